using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Microsoft.Extensions.Options;

namespace Nin.Api.Security;

/// <summary>A configured key: its SHA-256, a stable id (for rate-limit partitions and logs) and its scopes.</summary>
public sealed record ApiKeyEntry(string Id, string Name, byte[] Hash, IReadOnlySet<ApiScope> Scopes)
{
    public bool Allows(ApiScope scope) => Scopes.Contains(ApiScope.Admin) || Scopes.Contains(scope);
}

/// <summary>
/// The keys in force: <c>Security:ApiKeys</c> (every scope), <c>Security:Keys</c> (scoped) and the keys file. Rebuilt when
/// the configuration reloads (appsettings.json, a mounted settings file) and when the keys file's content changes (polled),
/// so keys are added, rotated and revoked without a restart; a keys file that cannot be read keeps the keys last read
/// from it, with a warning. Presented keys are compared by SHA-256 digest in constant time against every key.
/// </summary>
public sealed partial class ApiKeyRing : IDisposable
{
    private static readonly JsonSerializerOptions FileJson = new(JsonSerializerDefaults.Web) { ReadCommentHandling = JsonCommentHandling.Skip, AllowTrailingCommas = true };
    private readonly IOptionsMonitor<SecurityOptions> options;
    private readonly ILogger<ApiKeyRing> logger;
    private readonly IDisposable? subscription;
    private readonly Timer? poll;
    private readonly Lock gate = new();
    private IReadOnlyList<ApiKeyEntry> fromFile = [];
    private string? fileDigest;
    private volatile IReadOnlyList<ApiKeyEntry> keys = [];

    public ApiKeyRing(IOptionsMonitor<SecurityOptions> options, ILogger<ApiKeyRing> logger)
    {
        this.options = options;
        this.logger = logger;
        ReadFile(options.CurrentValue);
        Rebuild(options.CurrentValue);
        subscription = options.OnChange(o =>
        {
            ReadFile(o);
            Rebuild(o);
        });
        var seconds = options.CurrentValue.KeysFileReloadSeconds;
        if (seconds > 0)
        {
            var period = TimeSpan.FromSeconds(seconds);
            poll = new Timer(_ => Poll(), null, period, period);
        }
    }

    /// <summary>The keys now in force.</summary>
    public IReadOnlyList<ApiKeyEntry> Keys => keys;

    /// <summary>Whether the service is keyed (any key in force): then anonymous callers get the open routes only.</summary>
    public bool Any => keys.Count > 0;

    /// <summary>The key <paramref name="presented"/> is, or null; every key is compared, in constant time.</summary>
    public ApiKeyEntry? Match(string presented)
    {
        var hash = Hash(presented);
        ApiKeyEntry? found = null;
        foreach (var key in keys)
        {
            if (CryptographicOperations.FixedTimeEquals(hash, key.Hash) && found is null)
            {
                found = key;
            }
        }

        return found;
    }

    /// <summary>Re-reads the keys file now (the poll does this on its own).</summary>
    public void Reload()
    {
        if (ReadFile(options.CurrentValue))
        {
            Rebuild(options.CurrentValue);
        }
    }

    public void Dispose()
    {
        subscription?.Dispose();
        poll?.Dispose();
    }

    public static byte[] Hash(string key) => SHA256.HashData(Encoding.UTF8.GetBytes(key));

    /// <summary>The entries <paramref name="options"/> configure (bad ones are reported in <paramref name="problems"/> and left out).</summary>
    public static List<ApiKeyEntry> Entries(IEnumerable<ApiKeyOptions> options, List<string> problems, string source)
    {
        var result = new List<ApiKeyEntry>();
        var i = 0;
        foreach (var o in options)
        {
            i++;
            if (o.Problem() is { } problem)
            {
                problems.Add($"{source} key {i}{(o.Name is { Length: > 0 } n ? $" ({n})" : "")}: {problem}");
                continue;
            }

            var hash = o.Key is { Length: > 0 } key && !string.IsNullOrWhiteSpace(key) ? Hash(key.Trim()) : Convert.FromHexString(o.Sha256!.Trim());
            var scopes = o.Scopes.Select(s => ApiScopes.TryParse(s, out var scope) ? scope : default).ToHashSet();
            result.Add(Entry(hash, o.Name, scopes));
        }

        return result;
    }

    private static ApiKeyEntry Entry(byte[] hash, string? name, IReadOnlySet<ApiScope> scopes)
    {
        var id = Convert.ToHexStringLower(hash)[..12];
        return new ApiKeyEntry(id, string.IsNullOrWhiteSpace(name) ? id : name.Trim(), hash, scopes);
    }

    private void Poll()
    {
        try
        {
            Reload();
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            LogFileUnreadable(logger, options.CurrentValue.KeysFile, ex.Message);
        }
    }

    /// <summary>Reads the keys file when its content changed; true when the keys from it changed.</summary>
    private bool ReadFile(SecurityOptions o)
    {
        lock (gate)
        {
            if (string.IsNullOrWhiteSpace(o.KeysFile))
            {
                var had = fileDigest is not null;
                (fromFile, fileDigest) = ([], null);
                return had;
            }

            byte[] bytes;
            try
            {
                bytes = File.ReadAllBytes(o.KeysFile);
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                if (fileDigest != "missing")
                {
                    LogFileUnreadable(logger, o.KeysFile, ex.Message);
                    fileDigest = "missing";
                }

                return false;
            }

            var digest = Convert.ToHexString(SHA256.HashData(bytes));
            if (digest == fileDigest)
            {
                return false;
            }

            fileDigest = digest;
            List<ApiKeyOptions>? entries;
            try
            {
                entries = JsonSerializer.Deserialize<List<ApiKeyOptions>>(bytes, FileJson);
            }
            catch (JsonException ex)
            {
                LogFileUnreadable(logger, o.KeysFile, $"not a JSON array of keys ({ex.Message})");
                return false;
            }

            var problems = new List<string>();
            fromFile = Entries(entries ?? [], problems, "keys file");
            foreach (var problem in problems)
            {
                LogBadKey(logger, problem);
            }

            return true;
        }
    }

    private void Rebuild(SecurityOptions o)
    {
        var problems = new List<string>();
        var all = o.ApiKeys.Where(k => !string.IsNullOrWhiteSpace(k)).Select(k => Entry(Hash(k.Trim()), null, new HashSet<ApiScope> { ApiScope.Admin })).ToList();
        all.AddRange(Entries(o.Keys, problems, "Security:Keys"));
        lock (gate)
        {
            all.AddRange(fromFile);
        }

        foreach (var problem in problems)
        {
            LogBadKey(logger, problem);
        }

        var changed = keys.Count != all.Count || !keys.Zip(all).All(p => p.First.Id == p.Second.Id && p.First.Scopes.SetEquals(p.Second.Scopes));
        var had = keys.Count;
        keys = all;
        if (changed && (all.Count > 0 || had > 0))
        {
            LogKeys(logger, all.Count, string.Join(", ", all.Select(k => $"{k.Name} [{string.Join(" ", k.Scopes.Select(ApiScopes.Name))}]")));
        }
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "API keys in force: {Count} ({Keys})")]
    private static partial void LogKeys(ILogger logger, int count, string keys);

    [LoggerMessage(Level = LogLevel.Warning, Message = "API key ignored: {Problem}")]
    private static partial void LogBadKey(ILogger logger, string problem);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Keys file {File} could not be read ({Reason}); the keys read from it before stay in force")]
    private static partial void LogFileUnreadable(ILogger logger, string? file, string reason);
}
