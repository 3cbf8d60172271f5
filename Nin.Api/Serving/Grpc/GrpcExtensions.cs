using Microsoft.AspNetCore.Server.Kestrel.Core;
using Nin.Api.Infrastructure;

namespace Nin.Api.Serving.Grpc;

/// <summary>
/// gRPC beside HTTP/1.1 on one Kestrel. Cleartext HTTP/2 (h2c) needs an endpoint that speaks only HTTP/2: without TLS
/// there is no ALPN to choose the protocol per connection, and the existing endpoints must stay HTTP/1.1 for browsers,
/// SignalR's WebSockets and plain clients. So <c>Serving:GrpcPort</c> adds one more endpoint, on the same host(s) as the
/// configured URLs, with HTTP/2 only; the configured URLs are kept as they are. Over TLS endpoints gRPC works on the
/// main port too (HTTP/2 negotiated by ALPN).
/// </summary>
public static class GrpcExtensions
{
    public static IHostApplicationBuilder AddNinGrpc(this IHostApplicationBuilder builder)
    {
        builder.Services.AddGrpc(o =>
        {
            o.EnableDetailedErrors = false;
            // No catch-all "/{service}/{method}" endpoints for unknown services: they match every two-segment path, so
            // DELETE /health/ready became a 404 instead of the 405 its GET-only route gives. An unknown gRPC service still
            // gets HTTP 404, which gRPC clients read as UNIMPLEMENTED.
            o.IgnoreUnknownServices = true;
            o.MaxReceiveMessageSize = null; // bounded by Kestrel's request body limit instead
        });

        var port = builder.Configuration.GetValue<int>($"{ServingOptions.SectionName}:{nameof(ServingOptions.GrpcPort)}");
        if (port <= 0 || builder is not WebApplicationBuilder web)
        {
            return builder;
        }

        var urls = Urls(builder.Configuration);
        var hosts = urls.Select(u => BindingAddress.Parse(u).Host).Distinct(StringComparer.OrdinalIgnoreCase).ToArray();
        web.WebHost.UseUrls([.. urls, .. hosts.Select(h => $"http://{(h.Contains(':', StringComparison.Ordinal) && !h.StartsWith('[') ? $"[{h}]" : h)}:{port}")]);
        web.WebHost.ConfigureKestrel(k => k.AddEndpointDefault(listen =>
        {
            if (listen.IPEndPoint?.Port == port)
            {
                listen.Protocols = HttpProtocols.Http2;
            }
        }));
        web.Services.Configure<KestrelServerOptions>(k => k.Limits.Http2.MaxStreamsPerConnection = Math.Max(100, k.Limits.Http2.MaxStreamsPerConnection));
        return builder;
    }

    /// <summary>The gRPC service; on the gRPC port only HTTP/2 is spoken, so HTTP routes are not reachable there.</summary>
    public static IEndpointRouteBuilder MapNinGrpc(this IEndpointRouteBuilder app)
    {
        var service = app.MapGrpcService<GrpcInferenceService>()
            .RequireRateLimiting(Security.SecurityExtensions.PredictPolicy)
            .WithMetadata(new ExcludeFromDescriptionAttribute()); // documented by its .proto, not OpenAPI
        // What each RPC needs, as endpoint metadata like the HTTP routes': inference needs a 'predict' key where
        // Security:ProtectPredict is on (InferenceAccess enforces it inside the call, with gRPC's own status codes); the
        // other RPCs only read.
        service.Add(endpoint =>
        {
            if (endpoint is RouteEndpointBuilder route && route.RoutePattern.RawText?.EndsWith("/ModelInfer", StringComparison.Ordinal) == true)
            {
                endpoint.Metadata.Add(new Security.RequiredScopeMetadata(Security.ApiScope.Predict, WhenPredictProtected: true));
            }
        });
        return app;
    }

    /// <summary>The URLs Kestrel would bind without the gRPC port: <c>urls</c>, else <c>http_ports</c>/<c>https_ports</c>, else its default.</summary>
    private static string[] Urls(IConfiguration configuration)
    {
        static string[] Split(string? value) => (value ?? "").Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        var urls = Split(configuration["urls"]);
        if (urls.Length > 0)
        {
            return urls;
        }

        var ports = Split(configuration["http_ports"]).Select(p => $"http://*:{p}").Concat(Split(configuration["https_ports"]).Select(p => $"https://*:{p}")).ToArray();
        return ports.Length > 0 ? ports : ["http://localhost:5000"];
    }
}
