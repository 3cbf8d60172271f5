using Microsoft.AspNetCore.Http.HttpResults;

namespace Nin.Api.Datasets;

public static class DatasetsApi
{
    public static IEndpointRouteBuilder MapDatasetsApi(this IEndpointRouteBuilder app)
    {
        var group = app.MapGroup("/datasets").WithTags("Datasets");
        group.MapGet("/", ListDatasets)
            .WithName("ListDatasets")
            .WithSummary("Datasets that can be trained on")
            .WithDescription("Built-in IDX datasets with their classes and train/test counts. `available` is false while the files are not in the data folder; training then tries to download them.");
        return app;
    }

    public static Ok<IReadOnlyList<DatasetInfo>> ListDatasets(DatasetCatalog catalog) => TypedResults.Ok(catalog.List());
}
