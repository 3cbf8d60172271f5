using Microsoft.OpenApi;

namespace Nin.Api.OpenApi;

/// <summary>The OpenAPI document at <c>/swagger/v1/swagger.json</c> and Swagger UI at <c>/swagger</c>.</summary>
public static class NinOpenApiExtensions
{
    public const string DocumentName = "v1";
    public const string DocumentPath = "/swagger/v1/swagger.json";

    public static IHostApplicationBuilder AddNinOpenApi(this IHostApplicationBuilder builder)
    {
        builder.Services.AddEndpointsApiExplorer();
        builder.Services.AddSwaggerGen(o =>
        {
            o.SwaggerDoc(DocumentName, new OpenApiInfo
            {
                Title = "Nin: Network in Network as a service",
                Version = "v1",
                Description = ApiDescription.Text,
            });
            foreach (var assembly in new[] { typeof(Program).Assembly, typeof(Nin.Model.Checkpoints.ModelMetadata).Assembly })
            {
                var xml = Path.Combine(AppContext.BaseDirectory, assembly.GetName().Name + ".xml");
                if (File.Exists(xml))
                {
                    o.IncludeXmlComments(xml, includeControllerXmlComments: false);
                }
            }

            o.SupportNonNullableReferenceTypes();

            // A nullable property whose type is a component ($ref) can say so only through allOf in OpenAPI 3.0:
            // without this, `metadata.recipe.continuedFrom: null` broke its own schema.
            o.UseAllOfToExtendReferenceSchemas();
            o.CustomSchemaIds(SchemaId);
            o.AddSecurityDefinition(SecurityOperationFilter.ApiKeyScheme, new OpenApiSecurityScheme
            {
                Type = SecuritySchemeType.ApiKey,
                In = ParameterLocation.Header,
                Name = Security.ApiKeyMiddleware.HeaderName,
                Description = "One of the service's keys (`Security:ApiKeys`). Operations list it when the service has keys; without keys the service is open.",
            });
            o.AddSecurityDefinition(SecurityOperationFilter.BearerScheme, new OpenApiSecurityScheme
            {
                Type = SecuritySchemeType.Http,
                Scheme = "bearer",
                Description = "The same key as `Authorization: Bearer <key>`.",
            });
            o.SchemaFilter<RulesSchemaFilter>();
            o.OperationFilter<PredictOperationFilter>();
            o.OperationFilter<UploadOperationFilter>();
            o.OperationFilter<KServeOperationFilter>();
            o.OperationFilter<NinOperationFilter>();
            o.OperationFilter<EvaluationOperationFilter>();
            o.OperationFilter<SecurityOperationFilter>();
            o.DocumentFilter<NonApiEndpointsDocumentFilter>();
        });
        return builder;
    }

    public static WebApplication UseNinOpenApi(this WebApplication app)
    {
        app.UseSwagger();
        app.UseSwaggerUI(o =>
        {
            o.SwaggerEndpoint(DocumentPath, "Nin v1");
            o.RoutePrefix = "swagger";
            o.DocumentTitle = "Nin API";
            o.DisplayRequestDuration();
            o.EnableTryItOutByDefault();
        });
        return app;
    }

    // Nested types (PredictApi.PredictForm) and generics get readable, unique ids.
    private static string SchemaId(Type type)
    {
        if (!type.IsGenericType)
        {
            return type.IsNested ? type.DeclaringType!.Name + type.Name : type.Name;
        }

        var name = type.Name[..type.Name.IndexOf('`', StringComparison.Ordinal)];
        return name + "Of" + string.Concat(type.GetGenericArguments().Select(SchemaId));
    }
}
