using System.Net;
using System.Net.Sockets;

namespace Nin.Api.Tests;

/// <summary>
/// A loopback TCP forwarder the service connects through, so a test can take a server "down"
/// (stop accepting and cut every connection) and bring it back.
/// </summary>
public sealed class TcpProxy : IAsyncDisposable
{
    private readonly IPEndPoint target;
    private readonly List<TcpClient> connections = [];
    private readonly Lock gate = new();
    private TcpListener? listener;
    private CancellationTokenSource? cts;

    public TcpProxy(IPEndPoint target, int port = 0)
    {
        this.target = target;
        Port = port;
        Start();
    }

    public int Port { get; private set; }

    /// <summary>A proxy to <paramref name="host"/>:<paramref name="port"/> (its first IPv4 address).</summary>
    public static async Task<TcpProxy> ToAsync(string host, int port)
    {
        var address = (await Dns.GetHostAddressesAsync(host)).First(a => a.AddressFamily == AddressFamily.InterNetwork);
        return new TcpProxy(new IPEndPoint(address, port));
    }

    public void Start()
    {
        listener = new TcpListener(IPAddress.Loopback, Port);
        listener.Server.SetSocketOption(SocketOptionLevel.Socket, SocketOptionName.ReuseAddress, true);
        listener.Start();
        Port = ((IPEndPoint)listener.LocalEndpoint).Port;
        cts = new CancellationTokenSource();
        _ = AcceptAsync(listener, cts.Token);
    }

    /// <summary>Stops listening and cuts every open connection.</summary>
    public void Stop()
    {
        cts?.Cancel();
        listener?.Stop();
        lock (gate)
        {
            foreach (var c in connections)
            {
                c.Dispose();
            }

            connections.Clear();
        }
    }

    private async Task AcceptAsync(TcpListener l, CancellationToken token)
    {
        while (!token.IsCancellationRequested)
        {
            TcpClient inbound;
            try
            {
                inbound = await l.AcceptTcpClientAsync(token);
            }
            catch (Exception ex) when (ex is OperationCanceledException or ObjectDisposedException or SocketException)
            {
                return;
            }

            var outbound = new TcpClient();
            try
            {
                await outbound.ConnectAsync(target, token);
            }
            catch (Exception ex) when (ex is OperationCanceledException or SocketException)
            {
                inbound.Dispose();
                outbound.Dispose();
                continue;
            }

            lock (gate)
            {
                connections.Add(inbound);
                connections.Add(outbound);
            }

            _ = PumpAsync(inbound, outbound, token);
            _ = PumpAsync(outbound, inbound, token);
        }
    }

    private static async Task PumpAsync(TcpClient from, TcpClient to, CancellationToken token)
    {
        try
        {
            await from.GetStream().CopyToAsync(to.GetStream(), token);
        }
        catch (Exception ex) when (ex is IOException or OperationCanceledException or ObjectDisposedException or InvalidOperationException or SocketException)
        {
        }
        finally
        {
            from.Dispose();
            to.Dispose();
        }
    }

    public ValueTask DisposeAsync()
    {
        Stop();
        cts?.Dispose();
        return ValueTask.CompletedTask;
    }
}
