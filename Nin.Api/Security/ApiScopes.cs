using Microsoft.AspNetCore.Routing.Patterns;

namespace Nin.Api.Security;

/// <summary>What a key may do. <c>admin</c> includes the others.</summary>
public enum ApiScope
{
    /// <summary>Inference on any version: <c>/predict</c> and KServe <c>infer</c> when <c>Security:ProtectPredict</c> is on; non-active versions, their export, samples and sample images when keys are configured.</summary>
    Predict,

    /// <summary>Training: <c>/train</c> (all verbs), the training hub, dataset uploads and deletions, evaluations.</summary>
    Train,

    /// <summary>Everything, including what changes what is served: import, activate and delete model versions, the Hangfire dashboard.</summary>
    Admin,
}

/// <summary>
/// Endpoint metadata naming the scope a request needs, for documentation (OpenAPI) and for anyone reading the
/// endpoint table. <see cref="WhenPredictProtected"/>: only with <c>Security:ProtectPredict</c> on.
/// <see cref="NonActiveVersions"/>: open for the active version, the scope needed for any other.
/// </summary>
public sealed record RequiredScopeMetadata(ApiScope Scope, bool WhenPredictProtected = false, bool NonActiveVersions = false)
{
    public string Name => ApiScopes.Name(Scope);
}

/// <summary>
/// The one rule for which requests need which scope, by method and path (prefix segments, case-insensitive, as routing
/// matches them). <see cref="ApiKeyMiddleware"/> enforces it on every request, endpoints or not; the same rule gives
/// endpoints their <see cref="RequiredScopeMetadata"/> (<see cref="WithRequiredScope{TBuilder}"/>, or <see cref="For"/>
/// for any endpoint).
/// </summary>
public static class ApiScopes
{
    public static IReadOnlyList<string> Names { get; } = ["predict", "train", "admin"];

    public static string Name(ApiScope scope) => Names[(int)scope];

    public static bool TryParse(string? text, out ApiScope scope)
    {
        var index = Names.ToList().FindIndex(n => string.Equals(n, text?.Trim(), StringComparison.OrdinalIgnoreCase));
        scope = index >= 0 ? (ApiScope)index : default;
        return index >= 0;
    }

    /// <summary>The scope a request with <paramref name="method"/> to <paramref name="path"/> needs, or null when it is open.</summary>
    public static RequiredScopeMetadata? Required(string method, PathString path)
    {
        var changes = HttpMethods.IsPost(method) || HttpMethods.IsDelete(method) || HttpMethods.IsPut(method) || HttpMethods.IsPatch(method);
        if (path.StartsWithSegments("/hangfire"))
        {
            return new(ApiScope.Admin);
        }

        if (path.StartsWithSegments("/train") || path.StartsWithSegments("/sweeps") || path.StartsWithSegments("/hubs"))
        {
            return new(ApiScope.Train);
        }

        if (path.StartsWithSegments("/datasets"))
        {
            return changes ? new(ApiScope.Train) : null;
        }

        if (path.StartsWithSegments("/models"))
        {
            if (!changes)
            {
                return IsVersionArtefact(path) ? new(ApiScope.Predict, NonActiveVersions: true) : null;
            }

            return LastSegmentIs(path, "evaluate") ? new(ApiScope.Train) : new(ApiScope.Admin);
        }

        if (path.StartsWithSegments("/v2/repository/models") && changes)
        {
            // Triton's repository control: a load does what a readiness check of the model does (open for the active
            // model); an unload changes what is loaded here, as activation changes what is served.
            return LastSegmentIs(path, "unload") ? new(ApiScope.Admin) : new(ApiScope.Predict, NonActiveVersions: true);
        }

        if (path.StartsWithSegments("/predict") || (path.StartsWithSegments("/v2/models") && changes))
        {
            return new(ApiScope.Predict, WhenPredictProtected: true);
        }

        return null;
    }

    /// <summary>The requirement of an endpoint: its metadata, else the rule applied to its route pattern and methods.</summary>
    public static RequiredScopeMetadata? For(Endpoint endpoint)
    {
        if (endpoint.Metadata.GetMetadata<RequiredScopeMetadata>() is { } declared)
        {
            return declared;
        }

        return endpoint is RouteEndpoint route ? FromPattern(route.RoutePattern, endpoint.Metadata.GetMetadata<IHttpMethodMetadata>()) : null;
    }

    /// <summary>Adds each endpoint's <see cref="RequiredScopeMetadata"/>, derived from its route and methods by the rule above.</summary>
    public static TBuilder WithRequiredScope<TBuilder>(this TBuilder builder)
        where TBuilder : IEndpointConventionBuilder
    {
        builder.Add(endpoint =>
        {
            if (endpoint is RouteEndpointBuilder route && FromPattern(route.RoutePattern, endpoint.Metadata.OfType<IHttpMethodMetadata>().LastOrDefault()) is { } scope)
            {
                endpoint.Metadata.Add(scope);
            }
        });
        return builder;
    }

    private static RequiredScopeMetadata? FromPattern(RoutePattern pattern, IHttpMethodMetadata? methods)
    {
        var path = new PathString("/" + (pattern.RawText ?? "").Trim('/'));
        return (methods?.HttpMethods ?? [HttpMethods.Get])
            .Select(m => Required(m, path))
            .OfType<RequiredScopeMetadata>()
            .MaxBy(r => r.Scope);
    }

    /// <summary><c>/models/{name}/versions/{version}/export</c>, <c>…/samples</c> and <c>…/samples/{index}</c>: a version's weights and test images.</summary>
    private static bool IsVersionArtefact(PathString path) => LastSegmentIs(path, "export") || LastSegmentIs(path, "samples") || IsSampleImage(path);

    /// <summary><c>/models/{name}/versions/{version}/samples/{index}</c>: one test image.</summary>
    private static bool IsSampleImage(PathString path)
    {
        var segments = (path.Value ?? "").Split('/', StringSplitOptions.RemoveEmptyEntries);
        return segments.Length == 6 && string.Equals(segments[2], "versions", StringComparison.OrdinalIgnoreCase)
            && string.Equals(segments[4], "samples", StringComparison.OrdinalIgnoreCase);
    }

    private static bool LastSegmentIs(PathString path, string segment)
    {
        var value = (path.Value ?? "").TrimEnd('/');
        var last = value[(value.LastIndexOf('/') + 1)..];
        return string.Equals(last, segment, StringComparison.OrdinalIgnoreCase);
    }
}
