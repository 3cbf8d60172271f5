using System.Net;
using System.Net.Sockets;

namespace Nin.Api.Security;

/// <summary>
/// The client a rate limit counts without a key: an IPv4 address, or the /64 network of an IPv6 one (a single host is
/// commonly given a whole /64, and a new address in it per request would otherwise be a new client each time).
/// IPv4-mapped IPv6 addresses count as their IPv4 address.
/// </summary>
public static class ClientNetwork
{
    public static string Of(IPAddress? address)
    {
        if (address is null)
        {
            return "unknown";
        }

        if (address.IsIPv4MappedToIPv6)
        {
            address = address.MapToIPv4();
        }

        if (address.AddressFamily != AddressFamily.InterNetworkV6)
        {
            return address.ToString();
        }

        var bytes = address.GetAddressBytes();
        Array.Clear(bytes, 8, 8);
        return new IPAddress(bytes) + "/64";
    }
}
