using System.Globalization;
using System.Net;
using System.Threading.RateLimiting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.HttpOverrides;
using Microsoft.AspNetCore.Http.Timeouts;
using Microsoft.AspNetCore.RateLimiting;
using Microsoft.Extensions.Options;

namespace Nin.Api.Security;

public static class SecurityExtensions
{
    /// <summary>The rate-limit policy of <c>POST /predict</c> and KServe <c>infer</c>, attached to those endpoints.</summary>
    public const string PredictPolicy = "predict";

    /// <summary>The rate-limit policy of <c>POST /train</c>.</summary>
    public const string TrainPolicy = "train";

    /// <summary>The rate-limit policy of a version's export and test samples.</summary>
    public const string ExportPolicy = "export";

    /// <summary>
    /// API keys with scopes (reloadable), trusted proxies, rate limits on inference, job starts and downloads, the
    /// server-wide body budget, and request timeouts.
    /// </summary>
    public static IHostApplicationBuilder AddNinSecurity(this IHostApplicationBuilder builder)
    {
        builder.Services.AddOptions<SecurityOptions>().BindConfiguration(SecurityOptions.SectionName)
            .Validate(o => !o.RequireApiKey || o.HasConfiguredKeys,
                "Security:RequireApiKey is set but no API key is configured (Security:ApiKeys, Security:Keys or Security:KeysFile; with docker compose: NIN_API_KEY in .env). Refusing to start a service that anyone who reaches it could train, upload to and change.")
            .Validate(o => o.Keys.All(k => k.Problem() is null),
                $"Security:Keys: every key needs Key or Sha256 (64 hex digits) and at least one scope of {string.Join(", ", ApiScopes.Names)}.")
            .Validate(o => o.MaxBufferedBodyBytes >= 0, "Security:MaxBufferedBodyBytes cannot be negative (0 turns the budget off).")
            .ValidateOnStart();
        builder.Services.AddOptions<ProxyOptions>().BindConfiguration(ProxyOptions.SectionName)
            .Validate(o => !o.Invalid().Any(), "ForwardedHeaders: KnownProxies must be IP addresses and KnownNetworks CIDR networks (10.42.0.0/16).")
            .Validate(o => o.ForwardLimit >= 1, "ForwardedHeaders:ForwardLimit must be at least 1.")
            .ValidateOnStart();

        // ASPNETCORE_FORWARDEDHEADERS_ENABLED makes ASP.NET Core believe X-Forwarded-For from any sender; its middleware
        // is left with nothing to do, and ForwardedHeaders:KnownProxies/KnownNetworks decide instead (UseNinSecurity).
        builder.Services.PostConfigure<ForwardedHeadersOptions>(o => o.ForwardedHeaders = ForwardedHeaders.None);
        builder.Services.AddOptions<RateLimitingOptions>().BindConfiguration(RateLimitingOptions.SectionName)
            .Validate(o => o.PredictPermitLimit > 0 && o.TrainPermitLimit > 0 && o.ExportPermitLimit > 0,
                "RateLimiting:PredictPermitLimit, TrainPermitLimit and ExportPermitLimit must be positive (RateLimiting:Enabled=false turns limiting off).")
            .Validate(o => o.PredictWindowSeconds > 0 && o.TrainWindowSeconds > 0 && o.ExportWindowSeconds > 0,
                "RateLimiting:PredictWindowSeconds, TrainWindowSeconds and ExportWindowSeconds must be positive.")
            .ValidateOnStart();
        builder.Services.AddHostedService<OpenServiceWarning>();
        builder.Services.AddSingleton<ApiKeyRing>();
        builder.Services.AddSingleton<VersionAccess>();
        builder.Services.AddSingleton<RequestBodyBudget>();

        builder.Services.AddRateLimiter(_ => { });
        builder.Services.AddOptions<RateLimiterOptions>().Configure<IOptions<RateLimitingOptions>>((o, limits) =>
        {
            var l = limits.Value;
            o.RejectionStatusCode = StatusCodes.Status429TooManyRequests;
            // Policies attached to endpoints (RequireRateLimiting), so whatever spelling of a path routing accepts
            // (case, trailing slash) meets the same limit; partitioned per API key, else per client address (IPv6: per /64).
            RateLimitPartition<string> Partition(HttpContext context, string policy, int permits, double window) =>
                !l.Enabled
                    ? RateLimitPartition.GetNoLimiter("off")
                    : RateLimitPartition.GetFixedWindowLimiter(policy + "|" + ApiKeyMiddleware.ClientOf(context), _ => new FixedWindowRateLimiterOptions
                    {
                        PermitLimit = Math.Max(1, permits),
                        Window = TimeSpan.FromSeconds(Math.Max(0.001, window)),
                        QueueLimit = 0,
                        AutoReplenishment = true,
                    });
            o.AddPolicy(PredictPolicy, context => Partition(context, PredictPolicy, l.PredictPermitLimit, l.PredictWindowSeconds));
            o.AddPolicy(TrainPolicy, context => Partition(context, TrainPolicy, l.TrainPermitLimit, l.TrainWindowSeconds));
            o.AddPolicy(ExportPolicy, context => Partition(context, ExportPolicy, l.ExportPermitLimit, l.ExportWindowSeconds));
            o.OnRejected = async (rejected, cancellationToken) =>
            {
                var context = rejected.HttpContext;
                var retryAfter = rejected.Lease.TryGetMetadata(MetadataName.RetryAfter, out var wait) ? wait : TimeSpan.FromSeconds(1);
                var seconds = Math.Max(1, (int)Math.Ceiling(retryAfter.TotalSeconds));
                context.Response.StatusCode = StatusCodes.Status429TooManyRequests;
                context.Response.Headers.RetryAfter = seconds.ToString(CultureInfo.InvariantCulture);
                var detail = $"This client's request limit is used up; retry after {seconds} s.";
                if (context.Request.Path.StartsWithSegments("/v2"))
                {
                    // KServe clients read the Open Inference Protocol's error body.
                    await context.Response.WriteAsJsonAsync(new Serving.V2Error(detail), cancellationToken);
                    return;
                }

                var problems = context.RequestServices.GetRequiredService<IProblemDetailsService>();
                await problems.WriteAsync(new ProblemDetailsContext
                {
                    HttpContext = context,
                    ProblemDetails =
                    {
                        Status = StatusCodes.Status429TooManyRequests,
                        Title = "Too many requests.",
                        Detail = detail,
                    },
                });
            };
        });

        builder.Services.AddRequestTimeouts();
        builder.Services.AddOptions<RequestTimeoutOptions>().Configure<IOptions<SecurityOptions>>((o, security) =>
        {
            if (security.Value.RequestTimeoutSeconds > 0)
            {
                o.DefaultPolicy = new RequestTimeoutPolicy
                {
                    Timeout = TimeSpan.FromSeconds(security.Value.RequestTimeoutSeconds),
                    TimeoutStatusCode = StatusCodes.Status504GatewayTimeout,
                };
            }
        });
        return builder;
    }

    /// <summary>
    /// Response headers (framing, CSP); the connecting address kept, then forwarded headers from trusted proxies only;
    /// the host check (DNS rebinding) and the cross-site check; the key and scope check (so limits partition by the
    /// verified key); the body budget; rate limits (attached to endpoints); timeouts.
    /// </summary>
    public static WebApplication UseNinSecurity(this WebApplication app)
    {
        app.UseMiddleware<SecurityHeaders>();
        ConnectingAddress.UseConnectingAddress(app);
        var proxies = app.Services.GetRequiredService<IOptions<ProxyOptions>>().Value;
        if (proxies.Enabled)
        {
            var forwarded = new ForwardedHeadersOptions
            {
                ForwardedHeaders = ForwardedHeaders.XForwardedFor | ForwardedHeaders.XForwardedProto,
                ForwardLimit = proxies.ForwardLimit,
                RequireHeaderSymmetry = false,
            };
            forwarded.KnownProxies.Clear();
            forwarded.KnownIPNetworks.Clear();
            foreach (var proxy in proxies.Proxies())
            {
                forwarded.KnownProxies.Add(proxy);
            }

            foreach (var network in proxies.Networks())
            {
                forwarded.KnownIPNetworks.Add(network);
            }

            app.UseForwardedHeaders(forwarded);
        }

        app.UseMiddleware<LoopbackHostGuard>();
        app.UseMiddleware<CrossSiteRequestGuard>();
        app.UseMiddleware<ApiKeyMiddleware>();
        app.UseMiddleware<RequestBodyBudget>();
        app.UseRateLimiter();
        app.UseRequestTimeouts();
        return app;
    }

    /// <summary>True when every address is a loopback one (localhost, 127.0.0.0/8, ::1).</summary>
    public static bool AllLoopback(IEnumerable<string> addresses)
    {
        foreach (var address in addresses)
        {
            var host = BindingHost(address);
            if (host is null)
            {
                return false;
            }

            if (string.Equals(host, "localhost", StringComparison.OrdinalIgnoreCase))
            {
                continue;
            }

            if (!IPAddress.TryParse(host.Trim('[', ']'), out var ip) || !IPAddress.IsLoopback(ip))
            {
                return false;
            }
        }

        return true;
    }

    private static string? BindingHost(string address)
    {
        var schemeEnd = address.IndexOf("://", StringComparison.Ordinal);
        var rest = schemeEnd >= 0 ? address[(schemeEnd + 3)..] : address;
        if (rest.StartsWith('['))
        {
            var close = rest.IndexOf(']', StringComparison.Ordinal);
            return close > 0 ? rest[..(close + 1)] : null;
        }

        var end = rest.IndexOfAny([':', '/']);
        return end >= 0 ? rest[..end] : rest;
    }

    /// <summary>Warns once the server has started when no API key is configured and it listens beyond loopback.</summary>
    private sealed class OpenServiceWarning(IServer server, IHostApplicationLifetime lifetime, ApiKeyRing keys, IConfiguration configuration, ILogger<OpenServiceWarning> logger) : IHostedService
    {
        public Task StartAsync(CancellationToken cancellationToken)
        {
            lifetime.ApplicationStarted.Register(() =>
            {
                if (string.Equals(configuration["FORWARDEDHEADERS_ENABLED"], "true", StringComparison.OrdinalIgnoreCase))
                {
                    logger.LogWarning("ASPNETCORE_FORWARDEDHEADERS_ENABLED is ignored: it would believe X-Forwarded-For from any sender. Name the proxies in ForwardedHeaders:KnownProxies or ForwardedHeaders:KnownNetworks.");
                }

                if (keys.Any)
                {
                    return;
                }

                var addresses = server.Features.Get<IServerAddressesFeature>()?.Addresses.ToList() ?? [];
                if (addresses.Count > 0 && !AllLoopback(addresses))
                {
                    logger.LogWarning(
                        "No API key is configured (Security:ApiKeys) and the service listens on {Addresses}: training, dataset and model management are open to anyone who can reach it.",
                        string.Join(", ", addresses));
                }
            });
            return Task.CompletedTask;
        }

        public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
    }
}
