using System.Net;
using Nin.Model.Data;

namespace Nin.Api.Tests.Model;

/// <summary>The built-in dataset download: HTTPS only, the official SHA-256, a size cap, nothing kept that fails them.</summary>
[HostTests]
public sealed class DatasetDownloadTests : IDisposable
{
    private readonly string data = Directory.CreateTempSubdirectory("nin-download-").FullName;

    public void Dispose() => Directory.Delete(data, recursive: true);

    /// <summary>Answers each file with what <paramref name="serve"/> returns for its name, recording the URLs asked for.</summary>
    private sealed class Mirror(Func<string, HttpContent> serve) : HttpMessageHandler
    {
        public List<Uri> Asked { get; } = [];

        protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
        {
            Asked.Add(request.RequestUri!);
            return Task.FromResult(new HttpResponseMessage(HttpStatusCode.OK) { Content = serve(Path.GetFileName(request.RequestUri!.AbsolutePath)) });
        }
    }

    private static HttpContent Official(string file) => new ByteArrayContent(File.ReadAllBytes(Path.Combine(TestPaths.SharedDatasets, "mnist", file)));

    [Fact]
    public async Task The_official_files_are_fetched_over_https_and_kept()
    {
        var mirror = new Mirror(Official);
        using var http = new HttpClient(mirror);
        await BuiltInDatasets.DownloadMissingAsync(data, BuiltInDatasets.Mnist, http, CancellationToken.None);
        Assert.True(BuiltInDatasets.IsAvailable(data, BuiltInDatasets.Mnist));
        Assert.All(mirror.Asked, u => Assert.Equal(Uri.UriSchemeHttps, u.Scheme));
        Assert.All(BuiltInDatasets.All, d => Assert.StartsWith("https://", d.DownloadBase, StringComparison.Ordinal));
    }

    [Fact]
    public async Task A_file_with_another_hash_is_refused_and_not_kept()
    {
        var mirror = new Mirror(name =>
        {
            var bytes = File.ReadAllBytes(Path.Combine(TestPaths.SharedDatasets, "mnist", name));
            if (name.StartsWith("t10k-labels", StringComparison.Ordinal))
            {
                bytes[^1] ^= 1; // still a valid gzip container length; not the official file
            }

            return new ByteArrayContent(bytes);
        });
        using var http = new HttpClient(mirror);
        var error = await Assert.ThrowsAsync<InvalidDataException>(() => BuiltInDatasets.DownloadMissingAsync(data, BuiltInDatasets.Mnist, http, CancellationToken.None));
        Assert.Contains("SHA-256", error.Message, StringComparison.Ordinal);
        Assert.False(File.Exists(Path.Combine(data, "mnist", "t10k-labels-idx1-ubyte.gz")));
        Assert.Empty(Directory.GetFiles(Path.Combine(data, "mnist"), "*.part"));
    }

    [Fact]
    public async Task A_download_past_its_cap_is_stopped()
    {
        var endless = new Mirror(_ => new StreamContent(new EndlessStream()));
        using var http = new HttpClient(endless);
        var error = await Assert.ThrowsAsync<InvalidDataException>(() => BuiltInDatasets.DownloadMissingAsync(data, BuiltInDatasets.FashionMnist, http, CancellationToken.None));
        Assert.Contains("more than", error.Message, StringComparison.Ordinal);
        Assert.Empty(Directory.GetFiles(Path.Combine(data, "fashion-mnist")));
    }

    private sealed class EndlessStream : Stream
    {
        public override bool CanRead => true;

        public override bool CanSeek => false;

        public override bool CanWrite => false;

        public override long Length => throw new NotSupportedException();

        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

        public override int Read(byte[] buffer, int offset, int count)
        {
            Array.Fill(buffer, (byte)7, offset, count);
            return count;
        }

        public override void Flush()
        {
        }

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();

        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }
}
