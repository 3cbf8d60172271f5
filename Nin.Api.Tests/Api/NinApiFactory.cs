using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http.Connections;
using Microsoft.AspNetCore.Mvc.Testing;
using Microsoft.AspNetCore.SignalR.Client;

namespace Nin.Api.Tests.Api;

/// <summary>
/// The real service in the test host, with its own temporary home (models, work) and the shared
/// datasets as its data folder.
/// </summary>
public class NinApiFactory : WebApplicationFactory<Program>
{
    private readonly Dictionary<string, string?> settings;
    private readonly bool ownsHome;

    // ownsHome: delete the given home on dispose too (a home made here always is).
    public NinApiFactory(IDictionary<string, string?>? overrides = null, string? home = null, bool ownsHome = false)
    {
        this.ownsHome = ownsHome || home is null;
        Home = home ?? Directory.CreateTempSubdirectory("nin-api-").FullName;
        settings = new Dictionary<string, string?>
        {
            ["Nin:Home"] = Home,
            ["Nin:DataDirectory"] = TestPaths.SharedDatasets,
            ["Nin:DownloadDatasets"] = "false",
            ["Torch:Device"] = "cpu",
        };
        foreach (var (key, value) in overrides ?? new Dictionary<string, string?>())
        {
            settings[key] = value;
        }
    }

    public string Home { get; }

    protected override void ConfigureWebHost(IWebHostBuilder builder)
    {
        builder.UseEnvironment("Testing");
        foreach (var (key, value) in settings)
        {
            builder.UseSetting(key, value);
        }
    }

    /// <summary>A SignalR client of the training hub, over the test server.</summary>
    public HubConnection CreateHubConnection(string path = "/hubs/training") =>
        new HubConnectionBuilder()
            .WithUrl(new Uri(Server.BaseAddress, path), o =>
            {
                o.HttpMessageHandlerFactory = _ => Server.CreateHandler();
                o.Transports = HttpTransportType.LongPolling;
            })
            .Build();

    protected override void Dispose(bool disposing)
    {
        base.Dispose(disposing);
        if (disposing && ownsHome)
        {
            try
            {
                Directory.Delete(Home, recursive: true);
            }
            catch (IOException)
            {
            }
        }
    }
}
