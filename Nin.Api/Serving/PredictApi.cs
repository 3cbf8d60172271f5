using System.Diagnostics;
using System.Globalization;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.Net.Http.Headers;
using Nin.Api.Security;
using Nin.Model.Imaging;

namespace Nin.Api.Serving;

/// <summary>One label with its probability.</summary>
public sealed record LabelScore(string Label, int Index, double Probability);

/// <summary>The classification of one uploaded image; <see cref="Explanation"/> only with <c>explain=cam</c>.</summary>
public sealed record Prediction(string? File, string Label, int Index, double Probability, IReadOnlyList<LabelScore> Top, bool Inverted, Explanation? Explanation = null);

/// <summary>Which model answered.</summary>
public sealed record ModelRef(string Name, int Version);

/// <summary>200 body of POST /predict: the model, where and by which engine (<c>torch</c> or <c>onnxruntime</c>) it ran.</summary>
public sealed record PredictResponse(ModelRef Model, string Device, string Engine, double ElapsedMs, IReadOnlyList<Prediction> Predictions);

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
                body (with an image Content-Type, `application/octet-stream` or none: the format is read from the bytes). PNG, JPEG, WebP, GIF (first frame) and BMP are accepted; a photo's EXIF orientation is applied, so a phone's portrait photo is read upright, as viewers show it. Each image is converted
                the way the model was trained: to its channels, padded to a square, resized to the dataset's native size
                (28×28 for Fashion-MNIST), then scaled and resized to the model's input exactly as in training.
                Fashion-MNIST items are light on a dark background; `invert=auto` (default) inverts images whose border is light,
                such as photos on a white background; `true`/`false` force it.
                Errors: 415 not a supported image, 413 over a size limit, 400 corrupt or unusable image (longer side over 20 times the shorter) or bad parameters,
                404 unknown `model`/`version`, 401 a version other than the active one without a key (when API keys are configured),
                429 too many requests, or too many loads of non-active versions without a key, 503 no model to serve.
                503 with `Retry-After` at once when the inference queue is full (`Serving:MaxQueueMilliseconds`), work waits too long for a thread (`Serving:MaxSchedulingDelayMilliseconds`, off by default), the version cannot be loaded on this replica now, or the connection arrived while too many were open (`Serving:ShedConnectionsAbove`; retry on a new connection),
                504 when the deadline passed: `X-Request-Timeout-Ms` (milliseconds) sets one per request, and work for a request past it is dropped before decoding and before its forward pass.
                A key that is sent must be valid (403 otherwise).
                `explain=cam` adds to each prediction a class activation map (`explanation`): where in the image the evidence for the predicted class
                (or for `explainClass`, an index or a class name) lies, as numbers (`values`, `height`×`width`, 0–1) and as a PNG of the network's input with the map drawn over it (`overlayPng`, base64).
                CAM reads the class's own map where NiN's last feature map is at least 7×7; otherwise Grad-CAM at the deepest stage that is (`method`, `layer`). Off by default; it costs one more forward and one backward pass per request (docs/serving.md).
                The `Server-Timing` response header says where the time went: `read`, `decode`, `queue`, `forward` (with its batch size), `infer` (queue and forward), `explain` (when asked) and `total`.
                """)
            .Produces<PredictResponse>()
            .ProducesProblem(StatusCodes.Status400BadRequest)
            .ProducesProblem(StatusCodes.Status401Unauthorized)
            .ProducesProblem(StatusCodes.Status403Forbidden)
            .ProducesProblem(StatusCodes.Status404NotFound)
            .ProducesProblem(StatusCodes.Status429TooManyRequests)
            .ProducesProblem(StatusCodes.Status413PayloadTooLarge)
            .ProducesProblem(StatusCodes.Status415UnsupportedMediaType)
            .ProducesProblem(StatusCodes.Status503ServiceUnavailable)
            .ProducesProblem(StatusCodes.Status504GatewayTimeout)
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

    /// <summary>The /predict adapter: query and body in, the data plane's outcome or refusal out as ProblemDetails.</summary>
    public static async Task<Results<Ok<PredictResponse>, ProblemHttpResult>> Predict(
        HttpContext context,
        InferenceDataPlane plane,
        InferenceAccess access,
        int? topK,
        string? model,
        int? version,
        string? invert,
        string? explain,
        string? explainClass,
        CancellationToken cancellationToken)
    {
        var started = Stopwatch.GetTimestamp();
        if (topK is < 1 or > 1000)
        {
            return Problem(StatusCodes.Status400BadRequest, "Invalid topK.", $"topK must be between 1 and 1000; got {topK}.");
        }

        if (!TryParseInvert(invert, out var invertMode))
        {
            return Problem(StatusCodes.Status400BadRequest, "Invalid invert.", $"invert must be auto, true or false; got '{invert}'.");
        }

        if (explain is not null && !string.Equals(explain.Trim(), "cam", StringComparison.OrdinalIgnoreCase))
        {
            return Problem(StatusCodes.Status400BadRequest, "Invalid explain.", $"explain must be cam (class activation maps) or absent; got '{explain}'.");
        }

        if (explainClass is not null && explain is null)
        {
            return Problem(StatusCodes.Status400BadRequest, "Invalid explainClass.", "explainClass needs explain=cam.");
        }

        if (version is < 1)
        {
            return Problem(StatusCodes.Status400BadRequest, "Invalid version.", "version must be a positive integer.");
        }

        if (model is not null && !Nin.Model.Checkpoints.ModelStore.IsValidName(model))
        {
            return Problem(StatusCodes.Status400BadRequest, "Invalid model name.", $"model: {Nin.Model.Checkpoints.ModelStore.NameRule}.");
        }

        try
        {
            access.Check(context, model, version, inference: true);
            plane.ShedIfFull("predict");
            var timeout = InferenceDeadlines.FromHeader(context.Request);
            var (images, error) = await ReadImagesAsync(context.Request, plane.Limits, cancellationToken);
            if (error is not null)
            {
                return error;
            }

            var outcome = await plane.InferAsync(new InferenceCall
            {
                Protocol = "predict",
                Model = model,
                Version = version,
                Images = images,
                Invert = invertMode,
                Keyed = VersionAccess.IsKeyed(context),
                Timeout = timeout,
                Started = started,
                ReadMilliseconds = Stopwatch.GetElapsedTime(started).TotalMilliseconds,
                Explain = explain is not null,
                ExplainClass = explainClass,
                TrafficKey = context.Request.Headers[TrafficRouter.KeyHeader].FirstOrDefault(),
            }, cancellationToken);

            var classes = outcome.Metadata.ClassNames;
            var k = Math.Min(topK ?? 3, classes.Count);
            var predictions = new Prediction[outcome.Results.Length];
            for (var i = 0; i < predictions.Length; i++)
            {
                var top = Top(outcome.Results[i].Probabilities, classes, k);
                predictions[i] = new Prediction(images![i].Name, top[0].Label, top[0].Index, top[0].Probability, top, outcome.Inverted[i], outcome.Explanations?[i]);
            }

            // Where the time went, for browser dev tools and the benchmark (W3C Server-Timing).
            var t = outcome.Times;
            context.Response.Headers["Server-Timing"] = string.Create(CultureInfo.InvariantCulture,
                $"read;dur={t.ReadMs:F2}, decode;dur={t.DecodeMs:F2}, queue;dur={t.QueueMs:F2}, forward;dur={t.ForwardMs:F2};desc=\"batch {t.BatchSize}\", infer;dur={t.QueueMs + t.ForwardMs:F2}, {(outcome.Explanations is null ? "" : $"explain;dur={t.ExplainMs:F2}, ")}total;dur={t.TotalMs:F2}");
            return TypedResults.Ok(new PredictResponse(new ModelRef(outcome.Model, outcome.Version), outcome.Device, outcome.Engine, Stopwatch.GetElapsedTime(started).TotalMilliseconds, predictions));
        }
        catch (InferenceException ex)
        {
            return Problem(context, ex);
        }
    }

    /// <summary>The <paramref name="k"/> most probable classes, most probable first (ties: lower index first).</summary>
    internal static LabelScore[] Top(float[] probabilities, IReadOnlyList<string> classes, int k)
    {
        var order = new int[probabilities.Length];
        for (var i = 0; i < order.Length; i++)
        {
            order[i] = i;
        }

        Array.Sort(order, (a, b) => probabilities[b] != probabilities[a] ? probabilities[b].CompareTo(probabilities[a]) : a.CompareTo(b));
        var top = new LabelScore[k];
        for (var i = 0; i < k; i++)
        {
            top[i] = new LabelScore(classes[order[i]], order[i], probabilities[order[i]]);
        }

        return top;
    }

    /// <summary>A data-plane refusal as ProblemDetails, with Retry-After when it has one.</summary>
    internal static ProblemHttpResult Problem(HttpContext context, InferenceException ex)
    {
        if (ex.RetryAfter is { } wait)
        {
            context.Response.Headers.RetryAfter = InferenceErrors.RetryAfterSeconds(wait);
        }

        return Problem(InferenceErrors.HttpStatus(ex.Kind), ex.Title, ex.Message);
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
    internal static async Task<(List<EncodedImage>? Images, ProblemHttpResult? Error)> ReadImagesAsync(HttpRequest request, ServingOptions limits, CancellationToken cancellationToken)
    {
        if (request.HttpContext.Features.Get<IHttpMaxRequestBodySizeFeature>() is { IsReadOnly: false } size)
        {
            size.MaxRequestBodySize = limits.MaxRequestBytes;
        }

        if (request.ContentLength > limits.MaxRequestBytes)
        {
            return (null, Problem(StatusCodes.Status413PayloadTooLarge, "Request too large.", $"The request is {request.ContentLength:N0} bytes; at most {limits.MaxRequestBytes:N0} are accepted."));
        }

        var images = new List<EncodedImage>();
        try
        {
            if (IsMultipart(request.ContentType))
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
                    images.Add(new EncodedImage(file.FileName, data));
                }
            }
            else if (IsRawImage(request.ContentType))
            {
                using var buffer = new MemoryStream(request.ContentLength is > 0 and var length && length <= limits.MaxImageBytes ? (int)length : 0);
                await request.Body.CopyToAsync(buffer, cancellationToken);
                if (buffer.Length > limits.MaxImageBytes)
                {
                    return (null, Problem(StatusCodes.Status413PayloadTooLarge, "Image too large.", $"The image is {buffer.Length:N0} bytes; at most {limits.MaxImageBytes:N0} are accepted."));
                }

                if (buffer.Length == 0)
                {
                    return (null, Problem(StatusCodes.Status400BadRequest, "No image.", "The request body is empty."));
                }

                images.Add(new EncodedImage(null, buffer.GetBuffer().AsMemory(0, (int)buffer.Length)));
            }
            else
            {
                return (null, Problem(StatusCodes.Status415UnsupportedMediaType, "Unsupported Content-Type.",
                    $"Send multipart/form-data with files in the field 'images', or one image as the raw body (an image Content-Type or application/octet-stream; got '{request.ContentType}')."));
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

    private static bool IsMultipart(string? contentType) =>
        MediaTypeHeaderValue.TryParse(contentType, out var type) && type.MediaType.Equals("multipart/form-data", StringComparison.OrdinalIgnoreCase);

    /// <summary>
    /// A body that is one image: an image Content-Type, <c>application/octet-stream</c>, none at all, or
    /// <c>application/x-www-form-urlencoded</c> (what <c>curl --data-binary @photo.jpg</c> sends unless told otherwise).
    /// The decoder reads the format from the bytes, so a body that is no image is still a 415 naming the formats.
    /// </summary>
    private static bool IsRawImage(string? contentType) =>
        string.IsNullOrWhiteSpace(contentType)
        || (MediaTypeHeaderValue.TryParse(contentType, out var type) && type.MediaType.Value is { } media
            && (media.StartsWith("image/", StringComparison.OrdinalIgnoreCase)
                || media.Equals("application/octet-stream", StringComparison.OrdinalIgnoreCase)
                || media.Equals("application/x-www-form-urlencoded", StringComparison.OrdinalIgnoreCase)));

    internal static ProblemHttpResult Problem(int status, string title, string detail) =>
        TypedResults.Problem(statusCode: status, title: title, detail: detail);
}
