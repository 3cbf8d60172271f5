using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;
using Newtonsoft.Json;
using Newtonsoft.Json.Linq;
using NJsonSchema;
using NJsonSchema.Validation;
using NSwag;

namespace Nin.Api.Tests.Contract;

/// <summary>One operation of the document: method, path template and its NSwag description.</summary>
public sealed record ContractOperation(string Method, string Path, OpenApiOperation Operation, Regex Pattern, int Literals)
{
    public string Id => Operation.OperationId ?? "(no operationId)";

    public override string ToString() => $"{Method} {Path} ({Id})";
}

/// <summary>
/// The served OpenAPI document read as a generated client reads it (NSwag), and the checks of the contract test:
/// a response must have a documented status and content type, and its body must validate against the documented
/// schema (NJsonSchema, OpenAPI 3 rules: <c>nullable</c>, <c>additionalProperties</c>, enums, ranges, patterns).
/// A request the server accepted (2xx) must validate against the documented request schema too.
/// </summary>
public sealed partial class ApiContract
{
    private static readonly JsonSchemaValidatorSettings Settings = new();

    private ApiContract(OpenApiDocument document)
    {
        Document = document;
        Operations = [.. document.Paths.SelectMany(p => p.Value.Select(o => Create(p.Key, o.Key, o.Value)))];
    }

    public OpenApiDocument Document { get; }

    public IReadOnlyList<ContractOperation> Operations { get; }

    public static async Task<ApiContract> LoadAsync(string json) => new(await OpenApiDocument.FromJsonAsync(json));

    private static ContractOperation Create(string path, string method, OpenApiOperation operation)
    {
        var literals = path.Split('/', StringSplitOptions.RemoveEmptyEntries).Count(s => !s.StartsWith('{'));
        var pattern = "^" + string.Concat(path.TrimEnd('/').Split('/').Skip(1).Select(s => "/" + (s.StartsWith('{') ? "[^/]+" : Regex.Escape(s)))) + "/?$";
        return new ContractOperation(method.ToUpperInvariant(), path, operation, new Regex(pattern, RegexOptions.IgnoreCase | RegexOptions.CultureInvariant), literals);
    }

    /// <summary>The operation a request reaches: the matching template with the most literal segments (as routing prefers).</summary>
    public ContractOperation? Find(string method, string path) =>
        Operations.Where(o => o.Method.Equals(method, StringComparison.OrdinalIgnoreCase) && o.Pattern.IsMatch(path))
            .OrderByDescending(o => o.Literals).FirstOrDefault();

    /// <summary>True when some operation has this path (with another method).</summary>
    public bool HasPath(string path) => Operations.Any(o => o.Pattern.IsMatch(path));

    /// <summary>Everything wrong with one exchange, each message naming operation, status, JSON pointer and rule.</summary>
    public IReadOnlyList<string> Check(Exchange exchange)
    {
        var problems = new List<string>();
        var operation = Find(exchange.Method, exchange.Path);
        if (operation is null)
        {
            // Outside the document: routing's own answers (404 unknown path, 405 method not allowed) must still be ProblemDetails.
            if (exchange.Status is 404 or 405 or 400)
            {
                CheckBody(problems, $"{exchange.Method} {exchange.Path} (not an operation)", exchange, "application/problem+json", ProblemDetailsSchema);
            }
            else
            {
                problems.Add($"{exchange}: no operation of the document matches {exchange.Method} {exchange.Path}");
            }

            return problems;
        }

        var label = $"{operation} → {exchange.Status}";
        var responses = operation.Operation.ActualResponses;
        var code = exchange.Status.ToString(CultureInfo.InvariantCulture);
        if (!responses.TryGetValue(code, out var response) && !responses.TryGetValue(code[0] + "XX", out response) && !responses.TryGetValue("default", out response))
        {
            problems.Add($"{label}: status {code} is not documented (documented: {string.Join(", ", responses.Keys)}) [{exchange}]");
            return problems;
        }

        response = response.ActualResponse;
        if (response.Content.Count == 0)
        {
            if (exchange.Body.Length > 0 && exchange.Method != "HEAD")
            {
                problems.Add($"{label}: documented without a body, but the response has {exchange.Body.Length} bytes of {exchange.ContentType} [{exchange}]");
            }
        }
        else if (exchange.Method != "HEAD")
        {
            var type = exchange.ContentType;
            var media = type is null ? null : response.Content.FirstOrDefault(c => MediaTypeMatches(c.Key, type)).Value;
            if (media is null)
            {
                problems.Add($"{label}: content type '{type ?? "(none)"}' ({exchange.Body.Length} bytes) is not documented (documented: {string.Join(", ", response.Content.Keys)}) [{exchange}]");
            }
            else
            {
                CheckBody(problems, label, exchange, type!, media.Schema);
            }
        }

        if (exchange.Status is >= 200 and < 300 && exchange.RequestJson is { } requestJson)
        {
            var body = operation.Operation.ActualRequestBody;
            var media = body?.Content.FirstOrDefault(c => MediaTypeMatches(c.Key, exchange.RequestContentType ?? "")).Value;
            if (media?.Schema is null)
            {
                problems.Add($"{label}: a {exchange.RequestContentType} request body was accepted, but the document has no such request body [{exchange}]");
            }
            else
            {
                foreach (var error in Validate(media.Schema, requestJson))
                {
                    problems.Add($"{label}: the request was accepted but breaks the documented request schema at {error} [{exchange}; request {Shorten(requestJson)}]");
                }
            }
        }

        return problems;
    }

    /// <summary>Problems of a documented example against its own schema.</summary>
    public static IEnumerable<string> Validate(JsonSchema schema, string json)
    {
        var errors = schema.Validate(json, SchemaType.OpenApi3, Settings).SelectMany(Describe).Distinct().ToArray();
        return errors.Length <= 12 ? errors : [.. errors.Take(12), $"… and {errors.Length - 12} more"];
    }

    private JsonSchema? ProblemDetailsSchema => Document.Components.Schemas.TryGetValue("ProblemDetails", out var s) ? s : null;

    private static void CheckBody(List<string> problems, string label, Exchange exchange, string type, JsonSchema? schema)
    {
        if (!RecordingHandler.IsJson(type) && !RecordingHandler.IsJson(exchange.ContentType))
        {
            if (!MediaTypeMatches(type, exchange.ContentType ?? ""))
            {
                problems.Add($"{label}: content type '{exchange.ContentType ?? "(none)"}' ({exchange.Body.Length} bytes), documented {type} [{exchange}]");
            }

            if (schema is not null && schema.ActualSchema.Type.HasFlag(JsonObjectType.String) && schema.ActualSchema.Format is "binary" or null)
            {
                return; // raw bytes or text: nothing further to validate
            }

            if (schema is not null)
            {
                problems.Add($"{label}: {type} is documented with a non-string schema ({schema.ActualSchema.Type}); a non-JSON body needs type string (format binary) [{exchange}]");
            }

            return;
        }

        if (exchange.Body.Length == 0)
        {
            problems.Add($"{label}: {type} body documented, but the response body is empty [{exchange}]");
            return;
        }

        if (schema is null)
        {
            return;
        }

        var text = Encoding.UTF8.GetString(exchange.Body);
        IEnumerable<string> errors;
        try
        {
            errors = Validate(schema, text).ToArray();
        }
        catch (JsonReaderException ex)
        {
            errors = [$"(body) is not JSON: {ex.Message}"];
        }

        foreach (var error in errors)
        {
            problems.Add($"{label} {exchange.ContentType}: {error} [{exchange}; body {Shorten(text)}]");
        }
    }

    /// <summary>
    /// A validation error as "JSON pointer rule (details)". An error that only wraps others (an array item, a oneOf
    /// branch) is described by the errors inside it, which carry their own full pointers.
    /// </summary>
    private static IEnumerable<string> Describe(ValidationError error)
    {
        if (error is ChildSchemaValidationError child && child.Errors.Any(e => e.Value.Count > 0))
        {
            var prefix = error.Kind is ValidationErrorKind.NotOneOf or ValidationErrorKind.NotAnyOf ? $"{Pointer(error.Path)} {error.Kind}: " : "";
            return child.Errors.SelectMany(e => e.Value).SelectMany(Describe).Select(e => prefix + e);
        }

        var schemaRule = error.Schema is { } s ? SchemaRule(s, error.Kind) : "";
        return [$"{Pointer(error.Path)} {error.Kind}{schemaRule}"];
    }

    private static string SchemaRule(JsonSchema schema, ValidationErrorKind kind) => kind switch
    {
        ValidationErrorKind.NumberTooBig => $" (maximum {schema.Maximum})",
        ValidationErrorKind.NumberTooSmall => $" (minimum {schema.Minimum})",
        ValidationErrorKind.PatternMismatch => $" (pattern {schema.Pattern})",
        ValidationErrorKind.NotInEnumeration => $" (enum {string.Join(", ", schema.Enumeration)})",
        ValidationErrorKind.StringTooLong => $" (maxLength {schema.MaxLength})",
        ValidationErrorKind.StringTooShort => $" (minLength {schema.MinLength})",
        _ => "",
    };

    /// <summary>NJsonSchema's <c>#/a.b[0].c</c> as the JSON pointer <c>/a/b/0/c</c>.</summary>
    public static string Pointer(string? path)
    {
        if (string.IsNullOrEmpty(path) || path == "#")
        {
            return "/";
        }

        var p = path.StartsWith("#/", StringComparison.Ordinal) ? path[2..] : path.TrimStart('#');
        p = IndexAccess().Replace(p, ".$1");
        return "/" + string.Join('/', p.Split('.', StringSplitOptions.RemoveEmptyEntries));
    }

    [GeneratedRegex(@"\[(\d+)\]")]
    private static partial Regex IndexAccess();

    public static bool MediaTypeMatches(string documented, string actual)
    {
        if (documented.Equals(actual, StringComparison.OrdinalIgnoreCase) || documented == "*/*")
        {
            return true;
        }

        return documented.EndsWith("/*", StringComparison.Ordinal) && actual.StartsWith(documented[..^1], StringComparison.OrdinalIgnoreCase);
    }

    private static string Shorten(string text) => text.Length > 300 ? text[..300] + "…" : text;
}
