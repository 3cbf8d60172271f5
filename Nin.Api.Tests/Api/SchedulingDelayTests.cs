using System.Diagnostics.Metrics;
using Microsoft.Extensions.DependencyInjection;
using Nin.Api.Infrastructure;

namespace Nin.Api.Tests.Api;

/// <summary>The pool-delay probe's lifetime: started by the host, stopped and disposed in either order, each more than once.</summary>
[UnitTests]
public sealed class SchedulingDelayTests
{
    [Fact]
    public async Task Stopping_after_disposal_and_disposing_after_stopping_are_both_quiet()
    {
        using var services = new ServiceCollection().AddMetrics().BuildServiceProvider();
        var meters = services.GetRequiredService<IMeterFactory>();

        // Disposed first (a host torn down before its stop reached the service), then stopped.
        var disposedFirst = new SchedulingDelay(meters);
        await disposedFirst.StartAsync(CancellationToken.None);
        disposedFirst.Dispose();
        await disposedFirst.StopAsync(CancellationToken.None);
        disposedFirst.Dispose();

        // The usual order: stopped, then disposed as itself and as the hosted service.
        var stoppedFirst = new SchedulingDelay(meters);
        await stoppedFirst.StartAsync(CancellationToken.None);
        await Task.Delay(250); // a probe or two ran
        await stoppedFirst.StopAsync(CancellationToken.None);
        stoppedFirst.Dispose();
        stoppedFirst.Dispose();
        Assert.True(stoppedFirst.Current >= 0);
    }
}
