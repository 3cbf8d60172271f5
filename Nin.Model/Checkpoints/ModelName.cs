using System.Text.RegularExpressions;

namespace Nin.Model.Checkpoints;

/// <summary>
/// The one rule for model names, wherever a name enters (a route, <c>POST /train</c>'s <c>modelName</c>, <c>/predict</c>'s
/// <c>model</c>, KServe, an import, the store's own folders and its active pointer): 1–64 lower-case letters, digits,
/// '.', '_' or '-', starting with a letter or digit, and none of the store's own file names. The pattern ends in
/// <c>\z</c>, not <c>$</c>: .NET's <c>$</c> also matches before a final "\n", which let "nl\n" through.
/// </summary>
public static partial class ModelName
{
    /// <summary>The rule as error messages state it ("… is not valid: {Rule}.").</summary>
    public const string Rule = "use 1–64 lower-case letters, digits, '.', '_' or '-', starting with a letter or digit, and not one of the store's own file names (active.json, *.tmp)";

    public static bool IsValid(string? name) => name is not null && Pattern().IsMatch(name) && !IsReserved(name);

    /// <summary>A name the store uses for its own files beside the model folders (<c>active.json</c>, <c>active.json.*</c>, <c>*.tmp</c>).</summary>
    public static bool IsReserved(string name) =>
        name == ActiveModelFile.FileName || name.StartsWith(ActiveModelFile.FileName + ".", StringComparison.Ordinal) || name.EndsWith(".tmp", StringComparison.Ordinal);

    [GeneratedRegex(@"\A[a-z0-9][a-z0-9._-]{0,63}\z", RegexOptions.CultureInvariant)]
    private static partial Regex Pattern();
}
