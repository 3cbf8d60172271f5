using System.Net;
using System.Net.Http.Json;
using Nin.Api.Health;

namespace Nin.Api.Tests.Api;

/// <summary>Nin:Role: the single-process default stays as it was; roles that share jobs refuse to start without PostgreSQL.</summary>
[UnitTests]
public sealed class RoleTests
{
    [Fact]
    public async Task The_default_role_is_all_and_runs_everything_in_one_process_with_local_files()
    {
        using var factory = new NinApiFactory(new Dictionary<string, string?> { ["Nin:SeedDefaultModel"] = "false" });
        using var client = factory.CreateClient();

        var live = await client.GetFromJsonAsync<LiveResponse>(new Uri("/health/live", UriKind.Relative));
        Assert.Equal("all", live!.Role);
        Assert.IsType<Training.FileTrainingJobStore>(factory.Services.GetService(typeof(Training.ITrainingJobStore)));
        Assert.Contains(HostedServices(factory), h => h.GetType().Name == "BackgroundJobServerHostedService"); // Hangfire's server runs here
        using var train = await client.GetAsync(new Uri("/train", UriKind.Relative));
        Assert.Equal(HttpStatusCode.OK, train.StatusCode);
    }

    [Theory]
    [InlineData("api")]
    [InlineData("worker")]
    public void Roles_that_share_jobs_refuse_to_start_without_PostgreSQL(string role)
    {
        using var factory = new NinApiFactory(new Dictionary<string, string?> { ["Nin:Role"] = role, ["Nin:SeedDefaultModel"] = "false" });

        var error = Assert.ThrowsAny<InvalidOperationException>(() => factory.CreateClient());
        Assert.Contains("Hangfire:PostgresConnection", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void An_unknown_role_is_refused_naming_the_valid_ones()
    {
        using var factory = new NinApiFactory(new Dictionary<string, string?> { ["Nin:Role"] = "trainer", ["Nin:SeedDefaultModel"] = "false" });

        var error = Assert.ThrowsAny<InvalidOperationException>(() => factory.CreateClient());
        Assert.Contains("all, api, worker", error.Message, StringComparison.Ordinal);
    }

    private static IEnumerable<Microsoft.Extensions.Hosting.IHostedService> HostedServices(NinApiFactory factory) =>
        (IEnumerable<Microsoft.Extensions.Hosting.IHostedService>)factory.Services.GetService(typeof(IEnumerable<Microsoft.Extensions.Hosting.IHostedService>))!;
}
