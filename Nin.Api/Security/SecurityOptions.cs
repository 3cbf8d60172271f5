namespace Nin.Api.Security;

/// <summary>API keys and which routes need one, bound from the <c>Security</c> section (reloaded when it changes).</summary>
public sealed class SecurityOptions
{
    public const string SectionName = "Security";

    /// <summary>Keys with every scope (<c>admin</c>), sent as <c>X-Api-Key</c> or <c>Authorization: Bearer</c>. With no key anywhere the service runs open.</summary>
    public List<string> ApiKeys { get; set; } = [];

    /// <summary>Keys with the scopes named (<c>predict</c>, <c>train</c>, <c>admin</c>); each gives the key itself or its SHA-256 (hex).</summary>
    public List<ApiKeyOptions> Keys { get; set; } = [];

    /// <summary>
    /// A JSON file holding more keys, an array shaped like <see cref="Keys"/>; re-read every
    /// <see cref="KeysFileReloadSeconds"/> while the service runs, so keys are added, rotated and revoked without a restart.
    /// </summary>
    public string? KeysFile { get; set; }

    public double KeysFileReloadSeconds { get; set; } = 5;

    /// <summary>
    /// Refuse to start without an API key. docker-compose.yml sets it: a container's published port is
    /// reachable beyond the machine, where an open service would let anyone train, upload and activate.
    /// </summary>
    public bool RequireApiKey { get; set; }

    /// <summary>Require a key with the <c>predict</c> scope for <c>/predict</c> and KServe <c>infer</c> too (they are open by default).</summary>
    public bool ProtectPredict { get; set; }

    /// <summary>
    /// Other origins (<c>https://app.example.com</c>) whose pages may send requests that change state; by default only
    /// the service's own pages may (cross-site POST, PUT, PATCH, DELETE and WebSocket upgrades get 403).
    /// </summary>
    public List<string> AllowedOrigins { get; set; } = [];

    /// <summary>Time limit of a non-streaming request (504 beyond it); the SignalR hub has none.</summary>
    public int RequestTimeoutSeconds { get; set; } = 60;

    /// <summary>
    /// Bytes of request bodies the whole server holds at once: each request's <c>Content-Length</c> is reserved when it
    /// starts (a chunked body as it arrives) and given back when it ends; 503 with Retry-After while the budget is taken,
    /// 413 for a body larger than all of it. 0 turns the budget off.
    /// </summary>
    public long MaxBufferedBodyBytes { get; set; } = 1024L * 1024 * 1024;

    /// <summary>Whether any key is configured in the settings (the keys file is counted by <see cref="ApiKeyRing"/>).</summary>
    public bool HasConfiguredKeys => ApiKeys.Any(k => !string.IsNullOrWhiteSpace(k)) || Keys.Count > 0 || !string.IsNullOrWhiteSpace(KeysFile);
}

/// <summary>One key and what it may do.</summary>
public sealed class ApiKeyOptions
{
    /// <summary>A label for logs and rate-limit partitions (default: the first characters of the key's hash).</summary>
    public string? Name { get; set; }

    /// <summary>The key itself.</summary>
    public string? Key { get; set; }

    /// <summary>Or its SHA-256 as hex (<c>printf %s "$KEY" | sha256sum</c>), so the configuration holds no secret.</summary>
    public string? Sha256 { get; set; }

    /// <summary><c>predict</c>, <c>train</c>, <c>admin</c>; <c>admin</c> includes the others.</summary>
    public List<string> Scopes { get; set; } = [];

    /// <summary>Why the entry cannot be used, or null.</summary>
    public string? Problem()
    {
        if (string.IsNullOrWhiteSpace(Key) == string.IsNullOrWhiteSpace(Sha256))
        {
            return "give either Key or Sha256";
        }

        if (Sha256 is { } hex && !string.IsNullOrWhiteSpace(hex) && (hex.Trim().Length != 64 || !hex.Trim().All(Uri.IsHexDigit)))
        {
            return "Sha256 must be 64 hex digits";
        }

        if (Scopes.Count == 0)
        {
            return "name at least one scope";
        }

        return Scopes.FirstOrDefault(s => !ApiScopes.TryParse(s, out _)) is { } unknown
            ? $"unknown scope '{unknown}' (use {string.Join(", ", ApiScopes.Names)})"
            : null;
    }
}

/// <summary>Fixed-window limits per API key (or client address: IPv4, or the /64 of an IPv6 one), bound from the <c>RateLimiting</c> section.</summary>
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

    /// <summary>Downloads of a version's export or test samples per window and client.</summary>
    public int ExportPermitLimit { get; set; } = 30;

    public double ExportWindowSeconds { get; set; } = 60;
}
