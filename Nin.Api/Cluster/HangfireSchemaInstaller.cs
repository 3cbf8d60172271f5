using Hangfire.PostgreSql;
using Npgsql;

namespace Nin.Api.Cluster;

/// <summary>
/// Hangfire's PostgreSQL tables, installed (or upgraded) by one process at a time. Hangfire.PostgreSql installs them on
/// start, but processes starting together (replicas and workers of one deployment) can collide in that DDL ("could not
/// find tuple for constraint"); an advisory lock per schema serialises it, and Hangfire's own check then finds them done.
/// </summary>
internal static class HangfireSchemaInstaller
{
    public static void InstallUnderLock(string connectionString, string schema)
    {
        try
        {
            using var connection = new NpgsqlConnection(connectionString);
            connection.Open();
            Execute(connection, "SELECT pg_advisory_lock(hashtext('nin.hangfire.install.' || @schema))", schema);
            try
            {
                PostgreSqlObjectsInstaller.Install(connection, schema);
            }
            finally
            {
                Execute(connection, "SELECT pg_advisory_unlock(hashtext('nin.hangfire.install.' || @schema))", schema);
            }
        }
        catch (NpgsqlException)
        {
            // Not reachable now: Hangfire's storage reports it (readiness names jobStorage) and installs when it connects.
        }
    }

    private static void Execute(NpgsqlConnection connection, string sql, string schema)
    {
        using var command = new NpgsqlCommand(sql, connection);
        command.Parameters.AddWithValue("schema", schema);
        command.ExecuteNonQuery();
    }
}
