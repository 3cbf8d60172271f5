using System.Text.Json;

namespace Nin.Model.Checkpoints;

/// <summary>
/// Where the store records which version is served. One process: <see cref="ActiveModelFile"/> (<c>active.json</c> beside
/// the versions). Several processes sharing one store folder: a shared record (Nin.Api keeps it in PostgreSQL and
/// announces changes with LISTEN/NOTIFY), raising <see cref="ChangedElsewhere"/> when another process changes it.
/// </summary>
public interface IActiveModelPointer
{
    /// <summary>The served version as last known; cheap (it is read on every request).</summary>
    ActiveModel? Read();

    void Write(ActiveModel active);

    /// <summary>Raised when another process changed the served version.</summary>
    event Action<ActiveModel?>? ChangedElsewhere;
}

/// <summary><c>active.json</c> in the store's folder, replaced atomically on every change.</summary>
public sealed class ActiveModelFile(string root) : IActiveModelPointer
{
    public const string FileName = "active.json";

    public string Path { get; } = System.IO.Path.Combine(root, FileName);

    public event Action<ActiveModel?>? ChangedElsewhere
    {
        add { }
        remove { }
    }

    public ActiveModel? Read()
    {
        if (!File.Exists(Path))
        {
            return null;
        }

        try
        {
            return JsonSerializer.Deserialize<ActiveModel>(File.ReadAllText(Path), ModelMetadata.JsonOptions);
        }
        catch (Exception ex) when (ex is JsonException or IOException)
        {
            return null;
        }
    }

    public void Write(ActiveModel active)
    {
        var temp = Path + $".{Guid.NewGuid():N}.tmp";
        File.WriteAllText(temp, JsonSerializer.Serialize(active, ModelMetadata.JsonOptions));
        File.Move(temp, Path, overwrite: true);
    }
}
