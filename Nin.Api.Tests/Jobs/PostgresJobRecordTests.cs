using System.Net;
using System.Net.Http.Json;
using Hangfire;
using Hangfire.Client;
using Hangfire.Common;
using Hangfire.States;
using Microsoft.Extensions.DependencyInjection;
using Nin.Api.Tests.Api;
using Nin.Api.Tests.Cluster;
using Nin.Api.Training;
using Npgsql;
using static Nin.Api.Tests.Jobs.JobTestKit;

namespace Nin.Api.Tests.Jobs;

/// <summary>
/// On PostgreSQL the record and Hangfire's job are one transaction: both or neither. Paging, status filter and retention
/// run as queries; a job deleted in Hangfire is Cancelled there too.
/// </summary>
[Collection(TorchCollection.Name)]
[ClusterTests]
public sealed class PostgresJobRecordTests
{
    private static NinApiFactory Start(string schema) => new(new Dictionary<string, string?>
    {
        ["Nin:SeedDefaultModel"] = "false",
        ["Hangfire:PostgresConnection"] = TestServers.Postgres,
        ["Hangfire:PostgresSchema"] = schema,
        ["SharedState:Schema"] = schema + "_nin",
    });

    /// <summary>Refuses to create training jobs while <see cref="Refusing"/>, as a storage error in the middle of the enqueue would.</summary>
    private sealed class RefuseTrainingJobs : JobFilterAttribute, IClientFilter
    {
        public volatile bool Refusing;

        public void OnCreating(CreatingContext context)
        {
            if (Refusing && context.Job.Type == typeof(TrainingJob))
            {
                throw new InvalidOperationException("simulated: Hangfire's storage refused the job");
            }
        }

        public void OnCreated(CreatedContext context)
        {
        }
    }

    private static long Count(string sql, string schema)
    {
        using var connection = new NpgsqlConnection(TestServers.Postgres);
        connection.Open();
        using var command = new NpgsqlCommand(sql.Replace("{nin}", $"\"{schema}_nin\"", StringComparison.Ordinal).Replace("{hangfire}", $"\"{schema}\"", StringComparison.Ordinal), connection);
        return Convert.ToInt64(command.ExecuteScalar(), System.Globalization.CultureInfo.InvariantCulture);
    }

    [Fact]
    public async Task The_record_and_its_Hangfire_job_are_committed_together_or_not_at_all()
    {
        var schema = TestServers.NewSchema("nin_tx");
        var refuse = new RefuseTrainingJobs();
        GlobalJobFilters.Filters.Add(refuse);
        try
        {
            using var factory = Start(schema);
            using var client = factory.CreateClient();
            refuse.Refusing = true;
            using (var refused = await client.PostAsJsonAsync(new Uri("/train", UriKind.Relative), Tiny("orphan")))
            {
                await SecurityApiTests.AssertProblem(refused, HttpStatusCode.ServiceUnavailable);
            }

            Assert.Equal(0, Count("SELECT count(*) FROM {nin}.training_jobs", schema)); // before: a Queued row nothing would run
            Assert.Equal(0, Count("SELECT count(*) FROM {hangfire}.job", schema));

            refuse.Refusing = false;
            var id = await PostAsync(client, Tiny("paired"));
            var record = (await client.GetFromJsonAsync<JobSnapshot>(new Uri($"/train/{id}", UriKind.Relative), TrainingApiTests.Json))!;
            Assert.NotNull(record.HangfireJobId);
            using (var connection = JobStorage.Current.GetConnection())
            {
                Assert.NotNull(connection.GetJobData(record.HangfireJobId!)); // the job the record names exists
            }

            Assert.Equal(1, Count("SELECT count(*) FROM {nin}.training_jobs", schema));
            Assert.Equal(JobStatus.Succeeded, (await FinishedAsync(client, id)).Status);
        }
        finally
        {
            GlobalJobFilters.Filters.Remove(refuse);
        }
    }

    [Fact]
    public async Task Records_page_filter_and_expire_in_PostgreSQL_and_a_job_deleted_in_Hangfire_is_cancelled()
    {
        var schema = TestServers.NewSchema("nin_page");
        using var factory = Start(schema);
        using var client = factory.CreateClient();
        var store = Store(factory);
        var made = new List<string>();
        for (var i = 0; i < 7; i++)
        {
            made.Add(store.Create(Settings($"p{i}")).JobId);
        }

        store.Update(made[0], j => j with { Status = JobStatus.Succeeded, FinishedAt = DateTimeOffset.UtcNow.AddDays(-40) });
        store.Update(made[1], j => j with { Status = JobStatus.Failed, FinishedAt = DateTimeOffset.UtcNow, Error = "x" });

        var all = await JobPagingTests.AllPagesAsync(client, "", 3);
        Assert.Equal(made.AsEnumerable().Reverse(), all.Select(j => j.JobId));
        var finished = await JobPagingTests.AllPagesAsync(client, "&status=Succeeded,Failed", 1);
        Assert.Equal([made[1], made[0]], finished.Select(j => j.JobId));
        Assert.Equal(5, store.CountByStatus()[JobStatus.Queued]);

        // Retention (30 days by default): the 40-day-old finished record goes, the others stay.
        Assert.Equal([made[0]], store.DeleteFinishedBefore(DateTimeOffset.UtcNow.AddDays(-30)));
        Assert.Null(store.Get(made[0]));
        Assert.NotNull(store.Get(made[1]));

        // Deleted in Hangfire: the record follows, in the process that made the change.
        var blocker = await PostAsync(client, Long("blocker"));
        var queued = await PostAsync(client, Tiny("deleted"));
        await WaitAsync(client, blocker, j => j.Status == JobStatus.Running);
        var record = await WaitAsync(client, queued, j => j.HangfireJobId is not null);
        Assert.True(factory.Services.GetRequiredService<IBackgroundJobClient>().Delete(record.HangfireJobId));
        Assert.Equal(JobStatus.Cancelled, (await WaitAsync(client, queued, j => j.Status != JobStatus.Queued, 10)).Status);
        using var cancel = await client.DeleteAsync(new Uri($"/train/{blocker}", UriKind.Relative));
        Assert.Equal(HttpStatusCode.Accepted, cancel.StatusCode);
        Assert.Equal(JobStatus.Cancelled, (await FinishedAsync(client, blocker, 60)).Status);
    }
}
