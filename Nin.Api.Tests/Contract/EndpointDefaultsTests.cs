using System.Net;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Nin.Api.Infrastructure;

namespace Nin.Api.Tests.Contract;

/// <summary>
/// Kestrel keeps one endpoint-defaults action; the service's several (connection counting, rejected requests'
/// ProblemDetails, the gRPC port's HTTP/2) must all run. Before, with a gRPC port set, the last one replaced the others.
/// </summary>
[UnitTests]
public sealed class EndpointDefaultsTests
{
    [Fact]
    public void Every_added_default_runs_for_an_endpoint_in_the_order_added()
    {
        var options = new KestrelServerOptions();
        var ran = new List<string>();
        options.AddEndpointDefault(_ => ran.Add("count connections"));
        options.AddEndpointDefault(_ => ran.Add("rewrite rejections"));
        options.AddEndpointDefault(listen =>
        {
            ran.Add("grpc port");
            listen.Protocols = HttpProtocols.Http2;
        });

        var protocols = HttpProtocols.None;
        options.Listen(IPAddress.Loopback, 0, listen => protocols = listen.Protocols);

        Assert.Equal(["count connections", "rewrite rejections", "grpc port"], ran);
        Assert.Equal(HttpProtocols.Http2, protocols);
    }
}
