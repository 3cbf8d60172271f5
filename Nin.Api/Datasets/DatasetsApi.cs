using System.Globalization;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.Http.HttpResults;
using Nin.Api.Training;
using Nin.Api.Security;

namespace Nin.Api.Datasets;

public static class DatasetsApi
{
    public static IEndpointRouteBuilder MapDatasetsApi(this IEndpointRouteBuilder app)
    {
        var group = app.MapGroup("/datasets").WithTags("Datasets").WithRequiredScope();
        group.MapGet("/", ListDatasets)
            .WithName("ListDatasets")
            .WithSummary("Datasets that can be trained on")
            .WithDescription("Built-in IDX datasets with their classes and train/test counts, then uploaded datasets (`name` is the upload's id, `title` its name). `available` is false while a built-in's files are not in the data folder; training then tries to download them.");
        group.MapPost("/", UploadDataset)
            .WithName("UploadDataset")
            .WithSummary("Upload a dataset as a zip of one folder per class")
            .WithDescription("Multipart: `file` (a .zip: one folder per class of PNG/JPEG/WebP/BMP/GIF images, optionally under `train/` and `test/`; otherwise 1 in 6 of each class goes to test, seeded), `name`, optional `size` (stored side length, default 28) and `channels` (`auto`, `1`, `3`). Images are decoded once and stored compactly; files that are not usable images are skipped and listed in `skipped`. Train on it with `dataset: <id>`. Needs the API key when keys are configured.")
            .Produces<UploadedDataset>(StatusCodes.Status201Created)
            .ProducesProblem(StatusCodes.Status400BadRequest)
            .ProducesProblem(StatusCodes.Status413PayloadTooLarge)
            .ProducesProblem(StatusCodes.Status415UnsupportedMediaType)
            .WithRequestTimeout(TimeSpan.FromMinutes(10));
        group.MapGet("/{id}", GetDataset)
            .WithName("GetDataset")
            .WithSummary("One dataset: an upload (by id) or a built-in (by name)")
            .WithDescription("An uploaded dataset as POST /datasets answered it (classes with image counts, train/test counts, channels, size, skipped entries), or a built-in dataset as GET /datasets lists it.")
            .Produces<UploadedDataset>()
            .ProducesProblem(StatusCodes.Status404NotFound);
        group.MapDelete("/{id}", DeleteDataset)
            .WithName("DeleteDataset")
            .WithSummary("Delete an uploaded dataset")
            .WithDescription("Removes the upload's files. 409 while a queued or running job uses it, or for a built-in dataset. Needs the API key when keys are configured.")
            .Produces(StatusCodes.Status204NoContent)
            .ProducesProblem(StatusCodes.Status404NotFound)
            .ProducesProblem(StatusCodes.Status409Conflict);
        return app;
    }

    public static Ok<IReadOnlyList<DatasetInfo>> ListDatasets(DatasetCatalog catalog) => TypedResults.Ok(catalog.List());

    public static IResult GetDataset(string id, DatasetCatalog catalog, UploadedDatasets uploads)
    {
        if (uploads.Get(id) is { } upload)
        {
            return TypedResults.Ok(upload);
        }

        return catalog.Find(id) is { } builtIn
            ? TypedResults.Ok(catalog.Describe(builtIn))
            : NotFound(id);
    }

    public static IResult DeleteDataset(string id, DatasetCatalog catalog, UploadedDatasets uploads, ITrainingJobStore jobs)
    {
        if (catalog.Find(id) is not null)
        {
            return TypedResults.Problem(statusCode: StatusCodes.Status409Conflict, title: "Built-in datasets cannot be deleted.");
        }

        if (uploads.Get(id) is null)
        {
            return NotFound(id);
        }

        var user = jobs.Unfinished().FirstOrDefault(j => j.Request.Dataset == id);
        if (user is not null)
        {
            return TypedResults.Problem(statusCode: StatusCodes.Status409Conflict, title: "The dataset is in use.",
                detail: $"Job {user.JobId} is {user.Status.ToString().ToLowerInvariant()} on it; cancel it or wait for it to finish.");
        }

        uploads.Delete(id);
        return TypedResults.NoContent();
    }

    public static async Task<IResult> UploadDataset(HttpRequest request, UploadedDatasets uploads, CancellationToken cancellationToken)
    {
        var limits = uploads.Limits;
        if (!request.HasFormContentType)
        {
            return TypedResults.Problem(statusCode: StatusCodes.Status415UnsupportedMediaType, title: "Send multipart/form-data with the zip in the field 'file'.");
        }

        if (request.HttpContext.Features.Get<IHttpMaxRequestBodySizeFeature>() is { IsReadOnly: false } bodySize)
        {
            bodySize.MaxRequestBodySize = limits.MaxUploadBytes;
        }

        if (request.ContentLength > limits.MaxUploadBytes)
        {
            return TypedResults.Problem(statusCode: StatusCodes.Status413PayloadTooLarge, title: $"The upload is larger than {limits.MaxUploadBytes} bytes.");
        }

        IFormCollection form;
        try
        {
            form = await request.ReadFormAsync(new FormOptions { MultipartBodyLengthLimit = limits.MaxUploadBytes, ValueCountLimit = 16 }, cancellationToken);
        }
        catch (InvalidDataException ex)
        {
            return TypedResults.Problem(statusCode: StatusCodes.Status400BadRequest, title: "The multipart form could not be read.", detail: ex.Message);
        }
        catch (BadHttpRequestException ex)
        {
            return TypedResults.Problem(statusCode: ex.StatusCode, title: "The upload could not be read.", detail: ex.Message);
        }

        var file = form.Files.GetFile("file");
        if (file is null || file.Length == 0)
        {
            return TypedResults.Problem(statusCode: StatusCodes.Status400BadRequest, title: "Send the zip in the form field 'file'.");
        }

        var name = form["name"].ToString().Trim();
        if (name.Length == 0)
        {
            name = Path.GetFileNameWithoutExtension(file.FileName);
        }

        if (name.Length is 0 or > 100 || name.Any(char.IsControl))
        {
            return TypedResults.Problem(statusCode: StatusCodes.Status400BadRequest, title: "'name' must be 1 to 100 printable characters.");
        }

        var size = limits.DefaultSize;
        if (form["size"].ToString() is { Length: > 0 } sizeText
            && (!int.TryParse(sizeText, NumberStyles.None, CultureInfo.InvariantCulture, out size) || size < 8 || size > limits.MaxSize))
        {
            return TypedResults.Problem(statusCode: StatusCodes.Status400BadRequest, title: $"'size' must be a whole number from 8 to {limits.MaxSize}.");
        }

        var channels = form["channels"].ToString() is { Length: > 0 } c ? c.ToLowerInvariant() : "auto";
        if (channels is not ("auto" or "1" or "3" or "grey" or "gray" or "rgb"))
        {
            return TypedResults.Problem(statusCode: StatusCodes.Status400BadRequest, title: "'channels' must be auto, 1 or 3.");
        }

        try
        {
            await using var stream = file.OpenReadStream();
            // Seconds to minutes of unpacking and decoding: a thread of its own, not one the requests' work queues for.
            var dataset = await Task.Factory.StartNew(() => uploads.Import(stream, name, size, channels, cancellationToken), cancellationToken, TaskCreationOptions.LongRunning, TaskScheduler.Default);
            return TypedResults.Created($"/datasets/{dataset.Id}", dataset);
        }
        catch (DatasetUploadException ex)
        {
            return TypedResults.Problem(statusCode: ex.Status, title: "The dataset was not accepted.", detail: ex.Message);
        }
        catch (Exception ex) when (ex is InvalidDataException or NotSupportedException or EndOfStreamException)
        {
            return TypedResults.Problem(statusCode: StatusCodes.Status400BadRequest, title: "The dataset was not accepted.", detail: "The zip archive is corrupt or uses an unsupported compression method.");
        }
    }

    private static ProblemHttpResult NotFound(string id) =>
        TypedResults.Problem(statusCode: StatusCodes.Status404NotFound, title: "Unknown dataset.", detail: $"No dataset '{Trim(id)}'.");

    private static string Trim(string s) => s.Length > 100 ? s[..100] + "…" : s;
}
