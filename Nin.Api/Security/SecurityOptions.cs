namespace Nin.Api.Security;

/// <summary>API keys and which routes need one, bound from the <c>Security</c> section.</summary>
public sealed class SecurityOptions
{
    public const string SectionName = "Security";

    /// <summary>Accepted keys (<c>X-Api-Key</c> or <c>Authorization: Bearer</c>). Empty: the service runs open.</summary>
    public List<string> ApiKeys { get; set; } = [];

    /// <summary>
    /// Refuse to start without an API key. docker-compose.yml sets it: a container's published port is
    /// reachable beyond the machine, where an open service would let anyone train, upload and activate.
    /// </summary>
    public bool RequireApiKey { get; set; }

    /// <summary>Require a key for <c>/predict</c> and KServe <c>infer</c> too (they are open by default).</summary>
    public bool ProtectPredict { get; set; }

    /// <summary>
    /// Other origins (<c>https://app.example.com</c>) whose pages may send requests that change state; by default only
    /// the service's own pages may (cross-site POST, PUT, PATCH, DELETE and WebSocket upgrades get 403).
    /// </summary>
    public List<string> AllowedOrigins { get; set; } = [];

    /// <summary>Time limit of a non-streaming request (504 beyond it); the SignalR hub has none.</summary>
    public int RequestTimeoutSeconds { get; set; } = 60;

    /// <summary>The configured keys, blanks dropped.</summary>
    public IReadOnlyList<string> EffectiveKeys => ApiKeys.Where(k => !string.IsNullOrWhiteSpace(k)).Select(k => k.Trim()).ToList();
}

/// <summary>Fixed-window limits per API key (or client IP without one), bound from the <c>RateLimiting</c> section.</summary>
public sealed class RateLimitingOptions
{
    public const string SectionName = "RateLimiting";

    public bool Enabled { get; set; } = true;

    /// <summary>Requests to <c>POST /predict</c> and <c>POST /v2/models/{name}/infer</c> per window and client.</summary>
    public int PredictPermitLimit { get; set; } = 600;

    public double PredictWindowSeconds { get; set; } = 10;

    /// <summary>Jobs started with <c>POST /train</c> per window and client.</summary>
    public int TrainPermitLimit { get; set; } = 30;

    public double TrainWindowSeconds { get; set; } = 60;
}
