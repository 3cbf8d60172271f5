using System.Diagnostics;
using System.Globalization;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.Extensions.Options;
using Nin.Api.Security;
using Nin.Model.Imaging;

namespace Nin.Api.Serving;

/// <summary>One label with its probability.</summary>
public sealed record LabelScore(string Label, int Index, double Probability);

/// <summary>The classification of one uploaded image.</summary>
public sealed record Prediction(string? File, string Label, int Index, double Probability, IReadOnlyList<LabelScore> Top, bool Inverted);

/// <summary>Which model answered.</summary>
public sealed record ModelRef(string Name, int Version);

/// <summary>200 body of POST /predict: the model, where and by which engine (<c>torch</c> or <c>onnxruntime</c>) it ran.</summary>
public sealed record PredictResponse(ModelRef Model, string Device, string Engine, double ElapsedMs, IReadOnlyList<Prediction> Predictions);

/// <summary>An image as received, before decoding.</summary>
internal sealed record UploadedImage(string? FileName, byte[] Data);

public static class PredictApi
{
    public static IEndpointRouteBuilder MapPredictApi(this IEndpointRouteBuilder app)
    {
        app.MapPost("/predict", Predict)
            .WithTags("Inference")
            .WithName("Predict")
            .WithSummary("Classify images")
            .WithDescription("""
                Send one or more images as `multipart/form-data` in the field `images` (or `image`), or one image as the raw
                body with an image Content-Type. PNG, JPEG, WebP, GIF (first frame) and BMP are accepted. Each image is converted
                the way the model was trained: to its channels, padded to a square, resized to the dataset's native size
                (28×28 for Fashion-MNIST), then scaled and resized to the model's input exactly as in training.
                Fashion-MNIST items are light on a dark background; `invert=auto` (default) inverts images whose border is light,
                such as photos on a white background; `true`/`false` force it.
                Errors: 415 not a supported image, 413 over a size limit, 400 corrupt or unusable image (longer side over 20 times the shorter) or bad parameters,
                404 unknown `model`/`version`, 401 a version other than the active one without a key (when API keys are configured),
                429 too many requests, or too many loads of non-active versions without a key, 503 no model to serve.
                The `Server-Timing` response header says where the time went: `read`, `decode`, `queue`, `forward` (with its batch size) and `infer`.
                """)
            .Produces<PredictResponse>()
            .ProducesProblem(StatusCodes.Status400BadRequest)
            .ProducesProblem(StatusCodes.Status401Unauthorized)
            .ProducesProblem(StatusCodes.Status404NotFound)
            .ProducesProblem(StatusCodes.Status429TooManyRequests)
            .ProducesProblem(StatusCodes.Status413PayloadTooLarge)
            .ProducesProblem(StatusCodes.Status415UnsupportedMediaType)
            .ProducesProblem(StatusCodes.Status503ServiceUnavailable)
            .RequireRateLimiting(SecurityExtensions.PredictPolicy)
            .DisableAntiforgery();
        return app;
    }

    /// <summary>The multipart form /predict accepts (documentation of the upload fields).</summary>
    public sealed class PredictForm
    {
        /// <summary>One or more image files.</summary>
        public IFormFileCollection? Images { get; set; }
    }

    public static async Task<Results<Ok<PredictResponse>, ProblemHttpResult>> Predict(
        HttpContext context,
        ModelRegistry registry,
        InferenceEngine engine,
        IOptions<ServingOptions> options,
        VersionAccess access,
        int? topK,
        string? model,
        int? version,
        string? invert,
        CancellationToken cancellationToken)
    {
        var watch = Stopwatch.StartNew();
        var limits = options.Value;
        if (topK is < 1 or > 1000)
        {
            return Problem(StatusCodes.Status400BadRequest, "Invalid topK.", $"topK must be between 1 and 1000; got {topK}.");
        }

        if (!TryParseInvert(invert, out var invertMode))
        {
            return Problem(StatusCodes.Status400BadRequest, "Invalid invert.", $"invert must be auto, true or false; got '{invert}'.");
        }

        if (version is < 1)
        {
            return Problem(StatusCodes.Status400BadRequest, "Invalid version.", "version must be a positive integer.");
        }

        if (model is not null && !Nin.Model.Checkpoints.ModelStore.IsValidName(model))
        {
            return Problem(StatusCodes.Status400BadRequest, "Invalid model name.", $"model: {Nin.Model.Checkpoints.ModelStore.NameRule}.");
        }

        if (!access.MayServe(context, model, version))
        {
            context.Response.Headers.WWWAuthenticate = "Bearer";
            return Problem(StatusCodes.Status401Unauthorized, VersionAccess.DeniedTitle, VersionAccess.DeniedDetail);
        }

        var (images, error) = await ReadImagesAsync(context.Request, limits, cancellationToken);
        if (error is not null)
        {
            return error;
        }

        var read = watch.Elapsed;

        LoadedModel? served;
        try
        {
            served = await registry.AcquireAsync(model, version, cancellationToken, boundedLoads: !VersionAccess.IsKeyed(context));
        }
        catch (VersionLoadLimitException ex)
        {
            context.Response.Headers.RetryAfter = Math.Max(1, (int)Math.Ceiling(ex.RetryAfter.TotalSeconds)).ToString(CultureInfo.InvariantCulture);
            return Problem(StatusCodes.Status429TooManyRequests, "Too many version loads.", ex.Message);
        }

        if (served is null)
        {
            return model is null
                ? Problem(StatusCodes.Status503ServiceUnavailable, "No model to serve.", "No model version is active. Train one with POST /train, or activate a stored version with POST /models/{name}/versions/{version}/activate.")
                : Problem(StatusCodes.Status404NotFound, "Unknown model.", $"There is no model '{model}'" + (version is null ? "." : $" version {version}.") + " See GET /models.");
        }

        try
        {
            var meta = served.Metadata;
            var inputs = new InferenceInput[images!.Count];
            var inverted = new bool[images.Count];
            for (var i = 0; i < images.Count; i++)
            {
                cancellationToken.ThrowIfCancellationRequested(); // timed out or gone: decode no more (the timeout answers 504)
                try
                {
                    var decoded = await ImageDecoder.DecodeAsync(images[i].Data, meta.InputChannels, meta.Preprocessing.NativeWidth, meta.Preprocessing.NativeHeight,
                        meta.Preprocessing.Foreground == "light-on-dark", invertMode, limits.MaxImagePixels, cancellationToken);
                    inputs[i] = new InferenceInput(decoded.Pixels, null);
                    inverted[i] = decoded.Inverted;
                }
                catch (ImageDecodeException ex)
                {
                    var name = images[i].FileName is { } f ? $"'{f}'" : $"#{i + 1}";
                    return ex.Kind switch
                    {
                        ImageErrorKind.Unsupported => Problem(StatusCodes.Status415UnsupportedMediaType, "Unsupported image.", $"Image {name}: {ex.Message}"),
                        ImageErrorKind.TooLarge => Problem(StatusCodes.Status413PayloadTooLarge, "Image too large.", $"Image {name}: {ex.Message}"),
                        ImageErrorKind.Unusable => Problem(StatusCodes.Status400BadRequest, "Unusable image.", $"Image {name}: {ex.Message}"),
                        _ => Problem(StatusCodes.Status400BadRequest, "Corrupt image.", $"Image {name}: {ex.Message}"),
                    };
                }
            }

            var decodedAt = watch.Elapsed;
            var results = await engine.InferAsync(served, inputs, cancellationToken);
            var inferred = watch.Elapsed;
            var k = Math.Min(topK ?? 3, meta.ClassNames.Count);
            var predictions = results.Select((r, i) =>
            {
                var p = r.Probabilities;
                var top = p.Select((prob, index) => new LabelScore(meta.ClassNames[index], index, prob))
                    .OrderByDescending(s => s.Probability).Take(k).ToArray();
                return new Prediction(images[i].FileName, top[0].Label, top[0].Index, top[0].Probability, top, inverted[i]);
            }).ToArray();

            // Where the time went, for browser dev tools and the benchmark (W3C Server-Timing).
            context.Response.Headers["Server-Timing"] = string.Create(CultureInfo.InvariantCulture,
                $"read;dur={read.TotalMilliseconds:F2}, decode;dur={(decodedAt - read).TotalMilliseconds:F2}, " +
                $"queue;dur={results.Max(r => r.QueueMilliseconds):F2}, forward;dur={results.Max(r => r.ForwardMilliseconds):F2};desc=\"batch {results.Max(r => r.BatchSize)}\", " +
                $"infer;dur={(inferred - decodedAt).TotalMilliseconds:F2}");
            return TypedResults.Ok(new PredictResponse(new ModelRef(served.Name, served.Version), served.Device, served.Engine, watch.Elapsed.TotalMilliseconds, predictions));
        }
        finally
        {
            served.Release();
        }
    }

    internal static bool TryParseInvert(string? text, out InvertMode mode)
    {
        mode = InvertMode.Auto;
        switch (text?.Trim().ToLowerInvariant())
        {
            case null or "" or "auto":
                return true;
            case "true" or "1" or "yes":
                mode = InvertMode.True;
                return true;
            case "false" or "0" or "no":
                mode = InvertMode.False;
                return true;
            default:
                return false;
        }
    }

    /// <summary>Reads the images of a multipart or raw-image request within the limits.</summary>
    internal static async Task<(List<UploadedImage>? Images, ProblemHttpResult? Error)> ReadImagesAsync(HttpRequest request, ServingOptions limits, CancellationToken cancellationToken)
    {
        if (request.HttpContext.Features.Get<IHttpMaxRequestBodySizeFeature>() is { IsReadOnly: false } size)
        {
            size.MaxRequestBodySize = limits.MaxRequestBytes;
        }

        if (request.ContentLength > limits.MaxRequestBytes)
        {
            return (null, Problem(StatusCodes.Status413PayloadTooLarge, "Request too large.", $"The request is {request.ContentLength:N0} bytes; at most {limits.MaxRequestBytes:N0} are accepted."));
        }

        var images = new List<UploadedImage>();
        try
        {
            if (request.HasFormContentType)
            {
                var form = await request.ReadFormAsync(new FormOptions
                {
                    MultipartBodyLengthLimit = limits.MaxRequestBytes,
                    ValueCountLimit = 1024,
                    KeyLengthLimit = 256,
                    MultipartHeadersCountLimit = 32,
                    MultipartHeadersLengthLimit = 16 * 1024,
                }, cancellationToken);
                var files = form.Files.Where(f => f.Name is "images" or "image").ToArray();
                if (files.Length == 0)
                {
                    return (null, Problem(StatusCodes.Status400BadRequest, "No image.", "Send the images as multipart/form-data files in the field 'images' (or 'image')."));
                }

                if (files.Length > limits.MaxImagesPerRequest)
                {
                    return (null, Problem(StatusCodes.Status413PayloadTooLarge, "Too many images.", $"{files.Length} images were sent; at most {limits.MaxImagesPerRequest} are accepted per request."));
                }

                foreach (var file in files)
                {
                    if (file.Length > limits.MaxImageBytes)
                    {
                        return (null, Problem(StatusCodes.Status413PayloadTooLarge, "Image too large.", $"'{file.FileName}' is {file.Length:N0} bytes; at most {limits.MaxImageBytes:N0} are accepted per image."));
                    }

                    var data = new byte[file.Length];
                    await using var stream = file.OpenReadStream();
                    await stream.ReadExactlyAsync(data, cancellationToken);
                    images.Add(new UploadedImage(file.FileName, data));
                }
            }
            else if (request.ContentType is { } type && type.StartsWith("image/", StringComparison.OrdinalIgnoreCase))
            {
                using var buffer = new MemoryStream();
                await request.Body.CopyToAsync(buffer, cancellationToken);
                if (buffer.Length > limits.MaxImageBytes)
                {
                    return (null, Problem(StatusCodes.Status413PayloadTooLarge, "Image too large.", $"The image is {buffer.Length:N0} bytes; at most {limits.MaxImageBytes:N0} are accepted."));
                }

                if (buffer.Length == 0)
                {
                    return (null, Problem(StatusCodes.Status400BadRequest, "No image.", "The request body is empty."));
                }

                images.Add(new UploadedImage(null, buffer.ToArray()));
            }
            else
            {
                return (null, Problem(StatusCodes.Status415UnsupportedMediaType, "Unsupported Content-Type.",
                    $"Send multipart/form-data with files in the field 'images', or a raw body with an image Content-Type (got '{request.ContentType ?? "none"}')."));
            }
        }
        catch (BadHttpRequestException ex)
        {
            return (null, Problem(ex.StatusCode, ex.StatusCode == StatusCodes.Status413PayloadTooLarge ? "Request too large." : "Bad request.", ex.Message));
        }
        catch (InvalidDataException ex)
        {
            return (null, Problem(StatusCodes.Status400BadRequest, "Malformed multipart body.", ex.Message));
        }
        catch (IOException ex) when (!cancellationToken.IsCancellationRequested)
        {
            return (null, Problem(StatusCodes.Status400BadRequest, "Incomplete request body.", ex.Message));
        }

        return (images, null);
    }

    internal static ProblemHttpResult Problem(int status, string title, string detail) =>
        TypedResults.Problem(statusCode: status, title: title, detail: detail);
}
