using Nin.Model.Checkpoints;
using Npgsql;

namespace Nin.Api.Cluster;

/// <summary>
/// The served version as one row (<c>{schema}.active_model</c>). Reads are served from memory (every request reads it);
/// a change is written with a NOTIFY in the same transaction, and <see cref="SharedStateListener"/> refreshes every
/// process's copy when it hears one, so all replicas swap within a second.
/// </summary>
public sealed class PostgresActiveModel(SharedStateDatabase database) : IActiveModelPointer
{
    private readonly Lock gate = new();
    private volatile State? state;

    public event Action<ActiveModel?>? ChangedElsewhere;

    public ActiveModel? Read()
    {
        if (state is { } known)
        {
            return known.Active;
        }

        Refresh();
        return state?.Active;
    }

    public void Write(ActiveModel active)
    {
        using var connection = database.Open();
        using var transaction = connection.BeginTransaction();
        using (var command = new NpgsqlCommand(
            $"INSERT INTO {database.Table("active_model")} (id, name, version, changed_at) VALUES (1, @name, @version, now()) " +
            "ON CONFLICT (id) DO UPDATE SET name = excluded.name, version = excluded.version, changed_at = excluded.changed_at",
            connection, transaction))
        {
            command.Parameters.AddWithValue("name", active.Name);
            command.Parameters.AddWithValue("version", active.Version);
            command.ExecuteNonQuery();
        }

        database.Notify(connection, transaction, SharedStateEvents.Active);
        transaction.Commit();
        lock (gate)
        {
            state = new State(active);
        }
    }

    /// <summary>Reads the row again; raises <see cref="ChangedElsewhere"/> when it differs from what this process knew.</summary>
    public void Refresh()
    {
        using var connection = database.Open();
        using var command = new NpgsqlCommand($"SELECT name, version FROM {database.Table("active_model")} WHERE id = 1", connection);
        ActiveModel? active = null;
        using (var reader = command.ExecuteReader())
        {
            if (reader.Read())
            {
                active = new ActiveModel(reader.GetString(0), reader.GetInt32(1));
            }
        }

        bool changed;
        lock (gate)
        {
            changed = state is { } known && known.Active != active;
            state = new State(active);
        }

        if (changed)
        {
            ChangedElsewhere?.Invoke(active);
        }
    }

    private sealed record State(ActiveModel? Active);
}
