using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using Nin.Api.Infrastructure;
using Nin.Api.Tests.Api;

namespace Nin.Api.Tests.Contract;

/// <summary>
/// Requests Kestrel refuses before the application (a path that decodes to NUL) still get ProblemDetails, over a real
/// Kestrel socket; everything else on the connection passes through untouched.
/// </summary>
[Collection(TorchCollection.Name)]
[HostTests]
public sealed class RejectedRequestTests
{
    [Fact]
    public async Task A_path_with_a_nul_gets_problem_details_and_other_requests_on_the_connection_are_untouched()
    {
        using var factory = new NinApiFactory(new Dictionary<string, string?> { ["Nin:SeedDefaultModel"] = "false" });
        factory.UseKestrel(0);
        factory.StartServer();
        var address = factory.ClientOptions.BaseAddress;

        using var socket = new TcpClient();
        await socket.ConnectAsync(address.Host, address.Port);
        var stream = socket.GetStream();
        var requests = "GET /health/live HTTP/1.1\r\nHost: localhost\r\n\r\n" + "GET /v2 HTTP/1.1\r\nHost: localhost\r\n\r\n" + "GET /models/%00/versions/1 HTTP/1.1\r\nHost: localhost\r\n\r\n";
        await stream.WriteAsync(Encoding.ASCII.GetBytes(requests));
        using var reader = new MemoryStream();
        await stream.CopyToAsync(reader).WaitAsync(TimeSpan.FromSeconds(30)); // the rejection closes the connection
        var text = Encoding.UTF8.GetString(reader.ToArray());

        var answers = text.Split("HTTP/1.1 ", StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(3, answers.Length);
        Assert.StartsWith("200", answers[0], StringComparison.Ordinal);
        Assert.Contains("\"live\"", answers[0], StringComparison.Ordinal);
        Assert.StartsWith("200", answers[1], StringComparison.Ordinal);
        Assert.Contains("binary_tensor_data", answers[1], StringComparison.Ordinal);
        Assert.StartsWith("400", answers[2], StringComparison.Ordinal);
        Assert.Contains("Content-Type: application/problem+json", answers[2], StringComparison.Ordinal);
        var body = answers[2][(answers[2].IndexOf("\r\n\r\n", StringComparison.Ordinal) + 4)..];
        var problem = JsonDocument.Parse(body).RootElement;
        Assert.Equal(400, problem.GetProperty("status").GetInt32());
        Assert.Equal("Bad Request", problem.GetProperty("title").GetString());
        Assert.Contains($"Content-Length: {Encoding.UTF8.GetByteCount(body)}", answers[2], StringComparison.Ordinal);
    }

    [Fact]
    public void Only_kestrels_own_empty_rejection_is_rewritten()
    {
        var canned = "HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Length: 0\r\nConnection: close\r\nDate: Wed, 02 Dec 2026 15:47:24 GMT\r\nServer: Kestrel\r\n\r\n"u8;
        var rewritten = Encoding.UTF8.GetString(RejectedRequestProblems.Rewrite(canned)!);
        Assert.StartsWith("HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Type: application/problem+json\r\nContent-Length: ", rewritten, StringComparison.Ordinal);
        Assert.Equal(431, JsonDocument.Parse(rewritten[(rewritten.IndexOf("\r\n\r\n", StringComparison.Ordinal) + 4)..]).RootElement.GetProperty("status").GetInt32());

        // An application's answer (a body, a content type, a kept-alive connection, a success) is left alone.
        Assert.Null(RejectedRequestProblems.Rewrite("HTTP/1.1 400 Bad Request\r\nContent-Type: application/problem+json\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"u8));
        Assert.Null(RejectedRequestProblems.Rewrite("HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n"u8));
        Assert.Null(RejectedRequestProblems.Rewrite("HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"u8));
        Assert.Null(RejectedRequestProblems.Rewrite("HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\nxyz"u8));
    }

    [Fact]
    public async Task A_query_value_of_the_wrong_type_is_named_without_net_types()
    {
        using var factory = new NinApiFactory(new Dictionary<string, string?> { ["Nin:SeedDefaultModel"] = "false" });
        using var client = factory.CreateClient();
        using var form = PredictApiTests.Form(PredictApiTests.Png(0));
        using var response = await client.PostAsync(new Uri("/predict?topK=abc", UriKind.Relative), form);
        var body = await response.Content.ReadAsStringAsync();
        Assert.Equal(System.Net.HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        Assert.Contains("'topK' cannot be \"abc\"", JsonDocument.Parse(body).RootElement.GetProperty("detail").GetString(), StringComparison.Ordinal);
        Assert.DoesNotContain("Nullable", body, StringComparison.Ordinal);
    }
}
