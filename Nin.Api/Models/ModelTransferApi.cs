using System.Security.Cryptography;
using System.Text.Json;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.Net.Http.Headers;
using Nin.Model.Archives;
using Nin.Model.Checkpoints;
using Nin.Model.Interop;
using Nin.Model.Network;
using Nin.Model.Onnx;
using Nin.Api.Security;

namespace Nin.Api.Models;

/// <summary>
/// Models that travel: a version exported as ONNX, safetensors or a PyTorch state_dict (d2l's key names), and
/// d2l PyTorch weights (or safetensors) imported as a new version.
/// </summary>
public static class ModelTransferApi
{
    /// <summary>Largest weights upload (a 3-channel, 1000-class NiN is about 30 MB).</summary>
    public const long MaxWeightsBytes = 256 * 1024 * 1024;

    /// <summary>The values of <c>export?format=</c>, the default first (<c>pt</c> and <c>pth</c> mean <c>pytorch</c>).</summary>
    public static readonly IReadOnlyList<string> ExportFormats = ["onnx", "safetensors", "pytorch", "pt", "pth"];

    /// <summary>The export cache (<c>Exports</c> section).</summary>
    public static IServiceCollection AddNinModelTransfer(this IServiceCollection services)
    {
        services.AddOptions<ExportOptions>().BindConfiguration(ExportOptions.SectionName)
            .Validate(o => o.CacheBytes >= 0 && o.ConcurrentBuilds >= 1, "Exports: CacheBytes cannot be negative and ConcurrentBuilds must be at least 1.")
            .ValidateOnStart();
        services.AddSingleton<ModelArtefacts>();
        return services;
    }

    public static IEndpointRouteBuilder MapModelTransferApi(this IEndpointRouteBuilder app)
    {
        var group = app.MapGroup("/models").WithTags("Models").WithRequiredScope().RequireValidModelName().ProducesProblem(StatusCodes.Status400BadRequest);

        group.MapGet("/{name}/versions/{version:int}/export", ExportModelVersion)
            .RequireRateLimiting(SecurityExtensions.ExportPolicy)
            .WithName("ExportModelVersion")
            .WithSummary("Download a version as ONNX, safetensors or a PyTorch state_dict")
            .WithDescription("""
                `format=onnx` (default): an ONNX model (opset 17) with input `input` float32 [N, C, S, S] (pixels scaled to [0, 1],
                resized to the model's image size; N dynamic) and output `probabilities` float32 [N, classes] (softmax); its
                metadata_props hold `classes`, `preprocessing` and `recipe` as JSON. It runs in ONNX Runtime, Triton or a browser.
                `precision=int8` (ONNX only): the version's static int8 model (QDQ, same input and output), as made when it was
                quantized (at the end of training, or by POST .../quantize; its accuracy against fp32 is at GET .../quantization);
                409 when it has none. `precision=fp32` is the default.
                `format=safetensors` and `format=pytorch` (a `torch.save` zip) hold the weights under the architecture's PyTorch key
                names (d2l's `0.0.weight` … `7.4.bias` for `nin`), so d2l's `net.load_state_dict(torch.load(path))` takes them;
                an architecture without a PyTorch module (`nin-bn`) exports as ONNX only (400).
                The active version is open; with API keys in force any other version needs a key with the `predict` scope (401).
                Each form is made once per version and cached (ETag; If-None-Match answers 304); a GET writes nothing.
                Rate-limited per client (`RateLimiting:ExportPermitLimit`, 429).
                """)
            .Produces(StatusCodes.Status200OK, contentType: "application/octet-stream")
            .Produces(StatusCodes.Status304NotModified)
            .ProducesProblem(StatusCodes.Status400BadRequest)
            .ProducesProblem(StatusCodes.Status401Unauthorized)
            .ProducesProblem(StatusCodes.Status429TooManyRequests)
            .ProducesProblem(StatusCodes.Status404NotFound)
            .ProducesProblem(StatusCodes.Status409Conflict);

        group.MapPost("/{name}/versions", ImportModelVersion)
            .WithName("ImportModelVersion")
            .WithSummary("Import PyTorch or safetensors weights as a new version")
            .WithDescription("""
                multipart/form-data: `weights` (a `.pt`/`.pth` file written by `torch.save(net.state_dict())` for d2l's
                `nn.Sequential` NiN, keys `0.0.weight` … `7.4.bias`, or a `.safetensors` file with those keys; this service's own
                names `block1.0.weight` … are accepted too), `classes` (a JSON array of names), `imageSize` (default 224),
                `channels` (1 or 3, default 1), `architecture` (default `nin`; one whose weights are a PyTorch state_dict, not
                `nin-bn`), `nativeSize` (the side images are converted to before scaling, default 28 for 1 channel, else `imageSize`), `foreground` (`light-on-dark` | `dark-on-light` |
                `none`; default `light-on-dark` for 1 channel, else `none`) and `activate` (default false; while another version is
                served, imported weights pass the promotion gate first: they have no recorded dataset to be evaluated on, so they
                are stored but not activated, and `promotion` says why; activate them with POST .../activate?force=true).
                201 with the new version. 400 names the first key that is missing, unexpected or mis-shaped.
                """)
            .Accepts<ImportForm>("multipart/form-data")
            .Produces<ModelVersionResponse>(StatusCodes.Status201Created)
            .ProducesProblem(StatusCodes.Status400BadRequest)
            .ProducesProblem(StatusCodes.Status413PayloadTooLarge)
            .ProducesProblem(StatusCodes.Status415UnsupportedMediaType)
            .DisableAntiforgery();

        return app;
    }

    /// <summary>The multipart form of an import (documentation of the fields).</summary>
    public sealed class ImportForm
    {
        public IFormFile? Weights { get; set; }

        public string? Classes { get; set; }

        public int? ImageSize { get; set; }

        public int? Channels { get; set; }

        public string? Architecture { get; set; }

        public int? NativeSize { get; set; }

        public string? Foreground { get; set; }

        public bool? Activate { get; set; }
    }

    public static async Task<Results<PhysicalFileHttpResult, FileContentHttpResult, StatusCodeHttpResult, ProblemHttpResult>> ExportModelVersion(
        string name, int version, string? format, HttpContext context, ModelStore store, VersionAccess access, ModelArtefacts artefacts, CancellationToken cancellationToken, string? precision = null)
    {
        if (!access.MayServe(context, name, version))
        {
            return TypedResults.Problem(statusCode: StatusCodes.Status401Unauthorized, title: VersionAccess.DeniedTitle, detail: VersionAccess.DeniedDetail);
        }

        var info = store.Find(name, version);
        if (info is null)
        {
            return TypedResults.Problem(statusCode: StatusCodes.Status404NotFound, title: "Unknown model version.", detail: $"There is no model '{name}' version {version}.");
        }

        var kind = ModelArtefacts.Normalise(format);
        if (kind is null)
        {
            return TypedResults.Problem(statusCode: StatusCodes.Status400BadRequest, title: "Unknown format.", detail: $"format must be onnx, safetensors or pytorch; got '{format}'.");
        }

        switch (precision?.Trim().ToLowerInvariant())
        {
            case null or "" or "fp32":
                break;
            case "int8" when kind == "onnx":
                // The file made when the version was quantized; a GET never makes one.
                return Int8Cache.ExistingFile(info.Directory, info.Metadata) is { } int8
                    ? TypedResults.PhysicalFile(int8, "application/octet-stream", $"{name}-v{version}.int8.onnx")
                    : TypedResults.Problem(statusCode: StatusCodes.Status409Conflict, title: "The version has no int8 model.",
                        detail: $"{name} version {version} is not quantized; POST /models/{name}/versions/{version}/quantize makes its int8 model (from its dataset's training images).");
            case "int8":
                return TypedResults.Problem(statusCode: StatusCodes.Status400BadRequest, title: "int8 is an ONNX export.", detail: $"precision=int8 goes with format=onnx; {kind} holds fp32 weights.");
            default:
                return TypedResults.Problem(statusCode: StatusCodes.Status400BadRequest, title: "Unknown precision.", detail: $"precision must be fp32 or int8; got '{precision}'.");
        }

        if (kind != "onnx" && NetworkArchitectures.Find(info.Metadata.Architecture) is not { PyTorchWeights: true })
        {
            return TypedResults.Problem(statusCode: StatusCodes.Status400BadRequest, title: "No PyTorch form for this architecture.",
                detail: NetworkArchitectures.Find(info.Metadata.Architecture) is null
                    ? $"{name} version {version} is a '{info.Metadata.Architecture}' network, an architecture this build does not know."
                    : $"{name} version {version} is a '{info.Metadata.Architecture}' network, which has no PyTorch module whose state_dict could hold its weights (d2l's has none for it); export it with format=onnx.");
        }

        var artefact = await artefacts.GetAsync(info, kind, cancellationToken);
        var tag = new EntityTagHeaderValue(artefact.ETag);
        context.Response.Headers.CacheControl = "private, max-age=0, must-revalidate";
        return artefact.Path is { } path
            ? TypedResults.PhysicalFile(path, "application/octet-stream", artefact.FileName, entityTag: tag)
            : TypedResults.File(artefact.Bytes!, "application/octet-stream", artefact.FileName, entityTag: tag);
    }

    public static async Task<Results<Created<ModelVersionResponse>, ProblemHttpResult>> ImportModelVersion(string name, HttpRequest request, ModelVersionPublisher publisher, CancellationToken cancellationToken)
    {
        if (!request.HasFormContentType)
        {
            return TypedResults.Problem(statusCode: StatusCodes.Status415UnsupportedMediaType, title: "Send multipart/form-data.", detail: "Send the weights file in the field 'weights' of a multipart/form-data request, with 'classes' and the other fields beside it.");
        }

        if (request.HttpContext.Features.Get<IHttpMaxRequestBodySizeFeature>() is { IsReadOnly: false } size)
        {
            size.MaxRequestBodySize = MaxWeightsBytes + (1024 * 1024);
        }

        IFormCollection form;
        try
        {
            form = await request.ReadFormAsync(new FormOptions { MultipartBodyLengthLimit = MaxWeightsBytes, ValueCountLimit = 64, ValueLengthLimit = 1024 * 1024 }, cancellationToken);
        }
        catch (BadHttpRequestException ex)
        {
            return TypedResults.Problem(statusCode: ex.StatusCode, title: ex.StatusCode == StatusCodes.Status413PayloadTooLarge ? "Request too large." : "Bad request.", detail: ex.Message);
        }
        catch (InvalidDataException ex)
        {
            return BadRequest("Malformed multipart body.", ex.Message);
        }

        var (settings, error) = ImportSettings.Parse(form);
        if (error is not null)
        {
            return BadRequest("Invalid import.", error);
        }

        var upload = form.Files.GetFile("weights");
        if (upload is null || upload.Length == 0)
        {
            return BadRequest("No weights.", "Send the weights file (.pt, .pth or .safetensors) in the multipart field 'weights'.");
        }

        var s = settings!;
        var schema = new StateDictSchema(s.Architecture.Layers(s.Channels, s.Classes.Count));
        if (schema.Elements * sizeof(float) > MaxWeightsBytes)
        {
            return BadRequest("Too many classes.", $"A '{s.Architecture.Name}' network with {s.Classes.Count:N0} classes has {schema.Elements:N0} parameters; at most {MaxWeightsBytes / sizeof(float):N0} are imported.");
        }

        string format;
        string sha256;
        IReadOnlyList<NamedTensor> weights;
        await using (var stream = upload.OpenReadStream())
        {
            sha256 = Convert.ToHexStringLower(await SHA256.HashDataAsync(stream, cancellationToken));
            stream.Position = 0;
            var start = new byte[4];
            format = await stream.ReadAtLeastAsync(start, 4, throwOnEndOfStream: false, cancellationToken) == 4 && ZipIndex.LooksLikeZip(start) ? "pytorch" : "safetensors";
            try
            {
                weights = format == "pytorch" ? PyTorchWeights.Read(stream, schema, cancellationToken) : Safetensors.Read(stream, schema);
            }
            catch (WeightsFormatException ex)
            {
                return BadRequest("The weights do not fit.", ex.Message);
            }
        }

        var metadata = new ModelMetadata
        {
            Name = name,
            ClassNames = s.Classes,
            InputChannels = s.Channels,
            ImageSize = s.ImageSize,
            Preprocessing = new PreprocessingInfo { Channels = s.Channels, NativeWidth = s.NativeSize, NativeHeight = s.NativeSize, Foreground = s.Foreground },
            TrainedOn = "imported",
            ImportedFrom = new ImportedWeights(format, Path.GetFileName(upload.FileName), sha256),
        };

        ModelVersionInfo stored;
        Nin.Model.Evaluation.PromotionDecision? promotion = null;
        using (var network = s.Architecture.Create(s.Channels, s.Classes.Count))
        {
            NinWeights.Write(network, weights);

            // The same steps as a trained version (ONNX, activation rule, promotion gate); a refused one is stored, not activated.
            stored = await publisher.AddAsync(network, metadata, s.Activate, gated: d => promotion = d, cancellationToken: cancellationToken);
        }

        return TypedResults.Created($"/models/{name}/versions/{stored.Version}", ModelVersionResponse.From(stored, promotion: promotion));
    }

    private static ProblemHttpResult BadRequest(string title, string detail) =>
        TypedResults.Problem(statusCode: StatusCodes.Status400BadRequest, title: title, detail: detail);

    /// <summary>The import's fields, checked.</summary>
    internal sealed record ImportSettings(NetworkArchitecture Architecture, IReadOnlyList<string> Classes, int ImageSize, int Channels, int NativeSize, string Foreground, bool Activate)
    {
        public static (ImportSettings? Settings, string? Error) Parse(IFormCollection form)
        {
            string? Field(string key) => form.TryGetValue(key, out var v) && !string.IsNullOrWhiteSpace(v.ToString()) ? v.ToString().Trim() : null;

            if (Field("classes") is not { } classesText)
            {
                return (null, "'classes' is required: a JSON array of class names, in the order of the network's outputs.");
            }

            string[]? classes;
            try
            {
                classes = JsonSerializer.Deserialize<string[]>(classesText);
            }
            catch (JsonException)
            {
                classes = null;
            }

            if (classes is null || classes.Length < 2 || classes.Any(string.IsNullOrWhiteSpace) || classes.Distinct().Count() != classes.Length)
            {
                return (null, "'classes' must be a JSON array of at least two distinct, non-empty names.");
            }

            var name = Field("architecture") ?? NetworkArchitectures.NinName;
            var architecture = NetworkArchitectures.Find(name);
            if (architecture is null)
            {
                return (null, $"Unknown architecture '{name}'. Known: {string.Join(", ", NetworkArchitectures.Names)}.");
            }

            if (!architecture.PyTorchWeights)
            {
                return (null, $"architecture '{architecture.Name}' cannot be imported: it has no PyTorch module whose state_dict the weights could come from (those that do: {string.Join(", ", Importable)}).");
            }

            if (!TryInt(Field("channels"), 1, out var channels) || channels is not (1 or 3))
            {
                return (null, "'channels' must be 1 or 3.");
            }

            if (!TryInt(Field("imageSize"), Math.Clamp(224, architecture.MinInputSize, architecture.MaxInputSize), out var imageSize)
                || imageSize < architecture.MinInputSize || imageSize > architecture.MaxInputSize)
            {
                return (null, $"'imageSize' must be an integer from {architecture.MinInputSize} to {architecture.MaxInputSize} (the '{architecture.Name}' network's input sizes).");
            }

            if (!TryInt(Field("nativeSize"), channels == 1 ? 28 : imageSize, out var nativeSize) || nativeSize < 1 || nativeSize > architecture.MaxInputSize)
            {
                return (null, $"'nativeSize' must be an integer from 1 to {architecture.MaxInputSize}.");
            }

            var foreground = Field("foreground") ?? (channels == 1 ? "light-on-dark" : "none");
            if (foreground is not ("light-on-dark" or "dark-on-light" or "none"))
            {
                return (null, $"'foreground' must be light-on-dark, dark-on-light or none; got '{foreground}'.");
            }

            var activateText = Field("activate") ?? "false";
            if (!bool.TryParse(activateText, out var activate))
            {
                return (null, $"'activate' must be true or false; got '{activateText}'.");
            }

            return (new ImportSettings(architecture, classes, imageSize, channels, nativeSize, foreground, activate), null);
        }

        /// <summary>The architectures whose weights can be imported (<see cref="NetworkArchitecture.PyTorchWeights"/>).</summary>
        public static IEnumerable<string> Importable => NetworkArchitectures.All.Where(a => a.PyTorchWeights).Select(a => a.Name);

        private static bool TryInt(string? text, int fallback, out int value)
        {
            if (text is null)
            {
                value = fallback;
                return true;
            }

            return int.TryParse(text, System.Globalization.NumberStyles.Integer, System.Globalization.CultureInfo.InvariantCulture, out value);
        }
    }
}
