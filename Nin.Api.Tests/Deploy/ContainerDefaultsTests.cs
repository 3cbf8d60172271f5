using Microsoft.Extensions.Options;
using Nin.Api.Infrastructure;
using Nin.Api.Tests.Api;
using Npgsql;

namespace Nin.Api.Tests.Deploy;

/// <summary>What the compose deployment relies on in the app: no open service where a key is required, no GSS probing.</summary>
[UnitTests]
public sealed class ContainerDefaultsTests
{
    [Fact]
    public void A_service_that_requires_a_key_refuses_to_start_without_one()
    {
        using var factory = new NinApiFactory(new Dictionary<string, string?>
        {
            ["Security:RequireApiKey"] = "true",
            ["Nin:SeedDefaultModel"] = "false",
        });
        var error = Assert.ThrowsAny<OptionsValidationException>(() => factory.CreateClient());
        Assert.Contains("NIN_API_KEY", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_service_that_requires_a_key_starts_with_one_and_asks_for_it()
    {
        using var factory = new NinApiFactory(new Dictionary<string, string?>
        {
            ["Security:RequireApiKey"] = "true",
            ["Security:ApiKeys:0"] = "k-123",
            ["Nin:SeedDefaultModel"] = "false",
        });
        using var client = factory.CreateClient();
        Assert.Equal(System.Net.HttpStatusCode.OK, (await client.GetAsync("/health/live")).StatusCode);
        Assert.Equal(System.Net.HttpStatusCode.Unauthorized, (await client.GetAsync("/train")).StatusCode);
    }

    [Theory]
    [InlineData("Host=db;Username=nin;Password=nin")]
    [InlineData("Host=db;Port=5433;Database=nin;Username=nin;Password=p;Timeout=5")]
    public void Gss_encryption_is_off_unless_the_string_asks(string connectionString)
    {
        var effective = new NpgsqlConnectionStringBuilder(HangfireOptions.DisableGssUnlessAsked(connectionString));
        Assert.Equal(GssEncryptionMode.Disable, effective.GssEncryptionMode);
        var original = new NpgsqlConnectionStringBuilder(connectionString);
        Assert.Equal(original.Host, effective.Host);
        Assert.Equal(original.Password, effective.Password);
        Assert.Equal(original.Database, effective.Database);
    }

    [Theory]
    [InlineData("Host=db;Username=nin;Gss Encryption Mode=Require", GssEncryptionMode.Require)]
    [InlineData("Host=db;Username=nin;GssEncryptionMode=Prefer", GssEncryptionMode.Prefer)]
    public void An_explicit_gss_setting_is_kept(string connectionString, GssEncryptionMode expected) =>
        Assert.Equal(expected, new NpgsqlConnectionStringBuilder(HangfireOptions.DisableGssUnlessAsked(connectionString)).GssEncryptionMode);
}
