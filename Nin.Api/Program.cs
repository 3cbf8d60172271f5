using Nin.Api.Datasets;
using Nin.Api.Health;
using Nin.Api.Infrastructure;
using Nin.Api.Models;
using Nin.Api.OpenApi;
using Nin.Api.Security;
using Nin.Api.Serving;
using Nin.Api.Serving.Grpc;
using Nin.Api.Sweeps;
using Nin.Api.Training;

var builder = WebApplication.CreateBuilder(args);

builder.AddNinCore();
builder.AddNinTraining();
builder.AddNinSweeps();
builder.AddNinServing();
builder.AddNinOpenApi();
builder.AddNinOperations();
builder.AddNinSecurity();
builder.Services.AddNinEvaluation();
builder.Services.AddNinQuantization();
builder.Services.AddNinModelTransfer();

var app = builder.Build();
var role = app.Services.GetRequiredService<NinRole>();

app.UseNinDefaults();
app.UseNinSecurity();
if (role.ServesApi)
{
    app.UseNinHangfireDashboard();
    app.UseNinOpenApi();
    app.UseDefaultFiles();
    app.UseStaticFiles();
    app.MapHealthApi();
    app.MapDatasetsApi();
    app.MapTrainingApi();
    app.MapSweepsApi();
    app.MapModelsApi();
    app.MapModelTransferApi();
    app.MapEvaluationApi();
    app.MapCompareApi();
    app.MapTrafficApi();
    app.MapQuantizationApi();
    app.MapPredictApi();
    app.MapKServeApi();
    app.MapNinGrpc();
    app.MapHub<TrainingHub>("/hubs/training").DisableRequestTimeout().WithRequiredScope();
}
else
{
    app.MapHealthApi(); // a worker answers health and metrics only
}

app.MapPrometheusScrapingEndpoint("/metrics").WithMetadata(new HttpMethodMetadata([HttpMethods.Get])); // other methods: 405
app.LogNinRole();

app.Run();

/// <summary>The entry point, visible to WebApplicationFactory in the tests.</summary>
public partial class Program;
