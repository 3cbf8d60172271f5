using System.Buffers.Binary;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.Json;
using Nin.Model.Data;

namespace Nin.Api.Tests.Api;

/// <summary>
/// The Open Inference Protocol beyond the basics: server metadata, versioned routes, requested outputs, and the binary
/// tensor data extension in both directions, following the examples of the protocol's documentation (KServe, Triton).
/// </summary>
[Collection(TorchCollection.Name)]
[HostTests]
public sealed class KServeProtocolTests(ServingFixture fixture) : IClassFixture<ServingFixture>
{
    private const int Size = 67; // the fixture's models

    private HttpClient Client => fixture.Factory.CreateClient();

    private static float[] Input(params int[] indices)
    {
        var pixels = indices.SelectMany(i => TestImages.FashionTest.Pixels.AsSpan(i * 784, 784).ToArray()).ToArray();
        using var bytes = TorchSharp.torch.tensor(pixels, [indices.Length, 1, 28, 28], TorchSharp.torch.ScalarType.Byte);
        using var pre = Nin.Model.Training.Preprocess.ToNetworkInput(bytes, Size);
        return pre.data<float>().ToArray();
    }

    private static async Task<JsonElement> PostJsonAsync(HttpClient client, string path, object request, HttpStatusCode expected = HttpStatusCode.OK)
    {
        using var response = await client.PostAsJsonAsync(new Uri(path, UriKind.Relative), request);
        Assert.True(expected == response.StatusCode, await response.Content.ReadAsStringAsync());
        return await response.Content.ReadFromJsonAsync<JsonElement>();
    }

    /// <summary>A binary-extension body: the JSON, then the bytes, with the JSON's length in the header.</summary>
    private static HttpContent BinaryBody(object header, params byte[][] tensors)
    {
        var json = JsonSerializer.SerializeToUtf8Bytes(header);
        var content = new ByteArrayContent([.. json, .. tensors.SelectMany(t => t)]);
        content.Headers.ContentType = new MediaTypeHeaderValue("application/octet-stream");
        content.Headers.Add("Inference-Header-Content-Length", json.Length.ToString(System.Globalization.CultureInfo.InvariantCulture));
        return content;
    }

    /// <summary>Splits a binary-extension response into its JSON and the bytes after it.</summary>
    private static async Task<(JsonElement Json, byte[] Binary)> ReadBinaryAsync(HttpResponseMessage response)
    {
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("application/octet-stream", response.Content.Headers.ContentType!.MediaType);
        var length = int.Parse(response.Headers.GetValues("Inference-Header-Content-Length").Single(), System.Globalization.CultureInfo.InvariantCulture);
        var body = await response.Content.ReadAsByteArrayAsync();
        return (JsonDocument.Parse(body.AsMemory(0, length)).RootElement, body[length..]);
    }

    private static float[] Floats(JsonElement data) => data.EnumerateArray().Select(v => v.GetSingle()).ToArray();

    [Fact]
    public async Task Server_metadata_names_the_server_its_version_and_extensions()
    {
        using var client = Client;
        var meta = await client.GetFromJsonAsync<JsonElement>(new Uri("/v2", UriKind.Relative));
        Assert.Equal("nin", meta.GetProperty("name").GetString());
        Assert.False(string.IsNullOrEmpty(meta.GetProperty("version").GetString()));
        Assert.Contains("binary_tensor_data", meta.GetProperty("extensions").EnumerateArray().Select(e => e.GetString()));
    }

    [Fact]
    public async Task Versioned_routes_address_one_version()
    {
        using var client = Client;
        var meta = await client.GetFromJsonAsync<JsonElement>(new Uri("/v2/models/alpha/versions/2", UriKind.Relative));
        Assert.Equal("alpha", meta.GetProperty("name").GetString());
        Assert.Equal("onnxruntime_onnx", meta.GetProperty("platform").GetString());
        using (var ready = await client.GetAsync(new Uri("/v2/models/alpha/versions/2/ready", UriKind.Relative)))
        {
            Assert.Equal(HttpStatusCode.OK, ready.StatusCode);
        }

        foreach (var path in new[] { "/v2/models/alpha/versions/9/ready", "/v2/models/alpha/versions/x", "/v2/models/nope/versions/1" })
        {
            using var missing = await client.GetAsync(new Uri(path, UriKind.Relative));
            Assert.Equal(HttpStatusCode.NotFound, missing.StatusCode);
            Assert.False(string.IsNullOrEmpty((await missing.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("error").GetString()));
        }

        var request = new { inputs = new[] { new { name = "input", shape = new[] { 1, 1, Size, Size }, datatype = "FP32", data = Input(0) } } };
        var v1 = await PostJsonAsync(client, "/v2/models/alpha/versions/1/infer", request);
        var v2 = await PostJsonAsync(client, "/v2/models/alpha/versions/2/infer", request);
        var unversioned = await PostJsonAsync(client, "/v2/models/alpha/infer", request); // the active version, 1
        Assert.Equal("1", v1.GetProperty("model_version").GetString());
        Assert.Equal("2", v2.GetProperty("model_version").GetString());
        Assert.Equal("1", unversioned.GetProperty("model_version").GetString());
        Assert.Equal(Floats(v1.GetProperty("outputs")[0].GetProperty("data")), Floats(unversioned.GetProperty("outputs")[0].GetProperty("data")));
        Assert.NotEqual(Floats(v1.GetProperty("outputs")[0].GetProperty("data")), Floats(v2.GetProperty("outputs")[0].GetProperty("data")));
        await PostJsonAsync(client, "/v2/models/alpha/versions/7/infer", request, HttpStatusCode.NotFound);
    }

    [Fact]
    public async Task Requested_outputs_are_the_only_ones_returned_and_a_null_id_is_omitted()
    {
        using var client = Client;
        var input = new { name = "input", shape = new[] { 2, 1, Size, Size }, datatype = "FP32", data = Input(0, 1) };

        // The protocol's JSON example: {"id": "42", "inputs": [...], "outputs": [{"name": "output0"}]}.
        var labelOnly = await PostJsonAsync(client, "/v2/models/alpha/infer", new { id = "42", inputs = new[] { input }, outputs = new[] { new { name = "label" } } });
        Assert.Equal("42", labelOnly.GetProperty("id").GetString());
        var output = Assert.Single(labelOnly.GetProperty("outputs").EnumerateArray());
        Assert.Equal("label", output.GetProperty("name").GetString());
        Assert.Equal("BYTES", output.GetProperty("datatype").GetString());
        Assert.Equal([2L], output.GetProperty("shape").EnumerateArray().Select(s => s.GetInt64()));
        Assert.All(output.GetProperty("data").EnumerateArray(), l => Assert.Contains(l.GetString(), BuiltInDatasets.FashionMnist.ClassNames));

        var reordered = await PostJsonAsync(client, "/v2/models/alpha/infer", new { inputs = new[] { input }, outputs = new[] { new { name = "label" }, new { name = "probabilities" } } });
        Assert.Equal(["label", "probabilities"], reordered.GetProperty("outputs").EnumerateArray().Select(o => o.GetProperty("name").GetString()));
        Assert.False(reordered.TryGetProperty("id", out _), "a request without id gets a response without id (not null)");

        var unknown = await PostJsonAsync(client, "/v2/models/alpha/infer", new { inputs = new[] { input }, outputs = new[] { new { name = "logits" } } }, HttpStatusCode.BadRequest);
        Assert.Contains("logits", unknown.GetProperty("error").GetString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Binary_tensor_data_in_and_out_gives_the_json_answers()
    {
        using var client = Client;
        var floats = Input(0, 1, 2);
        var json = await PostJsonAsync(client, "/v2/models/alpha/infer", new { inputs = new[] { new { name = "input", shape = new[] { 3, 1, Size, Size }, datatype = "FP32", data = floats } } });
        var expected = Floats(json.GetProperty("outputs")[0].GetProperty("data"));
        var labels = json.GetProperty("outputs")[1].GetProperty("data").EnumerateArray().Select(l => l.GetString()).ToArray();
        var inputBytes = MemoryMarshal.AsBytes(floats.AsSpan()).ToArray();

        // As in the extension's example: a binary input, one output binary and one as JSON.
        var header = new
        {
            inputs = new[] { new { name = "input", shape = new[] { 3, 1, Size, Size }, datatype = "FP32", parameters = new Dictionary<string, object> { ["binary_data_size"] = inputBytes.Length } } },
            outputs = new object[] { new { name = "probabilities", parameters = new { binary_data = true } }, new { name = "label" } },
        };
        using (var content = BinaryBody(header, inputBytes))
        using (var response = await client.PostAsync(new Uri("/v2/models/alpha/infer", UriKind.Relative), content))
        {
            var (body, binary) = await ReadBinaryAsync(response);
            var probabilities = body.GetProperty("outputs")[0];
            Assert.False(probabilities.TryGetProperty("data", out _));
            Assert.Equal(3 * 10 * 4, probabilities.GetProperty("parameters").GetProperty("binary_data_size").GetInt32());
            Assert.Equal([3L, 10], probabilities.GetProperty("shape").EnumerateArray().Select(s => s.GetInt64()));
            Assert.Equal(3 * 10 * 4, binary.Length);
            Assert.Equal(expected, MemoryMarshal.Cast<byte, float>(binary).ToArray());
            Assert.Equal(labels, body.GetProperty("outputs")[1].GetProperty("data").EnumerateArray().Select(l => l.GetString()));
        }

        // binary_data_output on the request: every output binary, BYTES as 4-byte lengths and UTF-8.
        var allBinary = new
        {
            parameters = new { binary_data_output = true },
            inputs = new[] { new { name = "input", shape = new[] { 3, 1, Size, Size }, datatype = "FP32", parameters = new Dictionary<string, object> { ["binary_data_size"] = inputBytes.Length } } },
        };
        using (var content = BinaryBody(allBinary, inputBytes))
        using (var response = await client.PostAsync(new Uri("/v2/models/alpha/infer", UriKind.Relative), content))
        {
            var (body, binary) = await ReadBinaryAsync(response);
            var sizes = body.GetProperty("outputs").EnumerateArray().Select(o => o.GetProperty("parameters").GetProperty("binary_data_size").GetInt32()).ToArray();
            Assert.Equal(binary.Length, sizes.Sum());
            Assert.Equal(expected, MemoryMarshal.Cast<byte, float>(binary.AsSpan(0, sizes[0])).ToArray());
            var decoded = new List<string>();
            var rest = binary.AsSpan(sizes[0]);
            while (rest.Length > 0)
            {
                var n = (int)BinaryPrimitives.ReadUInt32LittleEndian(rest);
                decoded.Add(Encoding.UTF8.GetString(rest.Slice(4, n)));
                rest = rest[(4 + n)..];
            }

            Assert.Equal(labels, decoded);
        }
    }

    [Fact]
    public async Task Json_data_nested_in_the_tensors_dimensions_reads_as_the_flat_array()
    {
        // The protocol lets JSON tensor data follow the tensor's own dimensions ([[1, 2], [4, 5]]) as well as flat.
        using var client = Client;
        var floats = Input(0, 1);
        var flat = await PostJsonAsync(client, "/v2/models/alpha/infer", new { inputs = new[] { new { name = "input", shape = new[] { 2, 1, Size, Size }, datatype = "FP32", data = floats } } });
        var nested = floats.Chunk(Size * Size).Select(image => new[] { image.Chunk(Size).ToArray() }).ToArray(); // [2][1][Size][Size]
        var answer = await PostJsonAsync(client, "/v2/models/alpha/infer", new { inputs = new[] { new { name = "input", shape = new[] { 2, 1, Size, Size }, datatype = "FP32", data = nested } } });
        Assert.Equal(Floats(flat.GetProperty("outputs")[0].GetProperty("data")), Floats(answer.GetProperty("outputs")[0].GetProperty("data")));

        // BYTES as Triton's clients shape a batch of strings, [N, 1], nested likewise.
        var images = new[] { TestImages.FashionImage(4), TestImages.FashionImage(5) };
        var bytes = await PostJsonAsync(client, "/v2/models/alpha/infer", new { inputs = new[] { new { name = "images", shape = new[] { 2, 1 }, datatype = "BYTES", data = images.Select(i => new[] { Convert.ToBase64String(i) }).ToArray() } } });
        Assert.Equal(2, bytes.GetProperty("outputs")[1].GetProperty("data").GetArrayLength());

        // Nesting that does not add up to the shape is refused like a flat array of the wrong length.
        var ragged = new object[] { floats.Take(10).ToArray(), new[] { floats.Skip(10).Take(3).ToArray() } };
        var refused = await PostJsonAsync(client, "/v2/models/alpha/infer", new { inputs = new[] { new { name = "input", shape = new[] { 2, 1, Size, Size }, datatype = "FP32", data = ragged } } }, HttpStatusCode.BadRequest);
        Assert.Contains("13 values", refused.GetProperty("error").GetString(), StringComparison.Ordinal);
        var notNumbers = await PostJsonAsync(client, "/v2/models/alpha/infer", new { inputs = new[] { new { name = "input", shape = new[] { 1, 1, 1, 1 }, datatype = "FP32", data = new object[] { new object[] { new { x = 1 } } } } } }, HttpStatusCode.BadRequest);
        Assert.Contains("not a finite number", notNumbers.GetProperty("error").GetString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Binary_bytes_input_carries_image_files()
    {
        using var client = Client;
        var images = new[] { TestImages.FashionImage(4), TestImages.FashionImage(5) };
        var json = await PostJsonAsync(client, "/v2/models/alpha/infer", new { inputs = new[] { new { name = "images", shape = new[] { 2 }, datatype = "BYTES", data = images.Select(Convert.ToBase64String).ToArray() } } });

        var elements = images.SelectMany(i => BitConverter.GetBytes((uint)i.Length).Concat(i)).ToArray();
        var header = new { inputs = new[] { new { name = "images", shape = new[] { 2 }, datatype = "BYTES", parameters = new Dictionary<string, object> { ["binary_data_size"] = elements.Length } } } };
        using var content = BinaryBody(header, elements);
        using var response = await client.PostAsync(new Uri("/v2/models/alpha/infer", UriKind.Relative), content);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("application/json", response.Content.Headers.ContentType!.MediaType); // no binary output asked for
        var binary = await response.Content.ReadFromJsonAsync<JsonElement>();
        Assert.Equal(Floats(json.GetProperty("outputs")[0].GetProperty("data")), Floats(binary.GetProperty("outputs")[0].GetProperty("data")));
    }

    [Theory]
    [InlineData(100, 0, -1, "declares")]      // binary_data_size beyond the bytes sent
    [InlineData(-100, 0, -1, "belong to no input")] // bytes left over
    [InlineData(0, 0, 1_000_000, "Inference-Header-Content-Length")]
    [InlineData(0, 5, -1, "bytes of binary data")] // the right total, the wrong size for the shape
    public async Task Inconsistent_binary_bodies_are_400s(int declaredExtra, int shapeExtra, int headerLength, string message)
    {
        using var client = Client;
        var bytes = MemoryMarshal.AsBytes(Input(0).AsSpan()).ToArray();
        if (shapeExtra > 0)
        {
            bytes = [.. bytes, .. new byte[shapeExtra]];
        }

        var header = new { inputs = new[] { new { name = "input", shape = new[] { 1, 1, Size, Size }, datatype = "FP32", parameters = new Dictionary<string, object> { ["binary_data_size"] = bytes.Length + Math.Max(0, declaredExtra) } } } };
        var sent = declaredExtra < 0 ? [.. bytes, .. new byte[-declaredExtra]] : bytes;
        using var content = BinaryBody(header, sent);
        if (headerLength > 0)
        {
            content.Headers.Remove("Inference-Header-Content-Length");
            content.Headers.Add("Inference-Header-Content-Length", headerLength.ToString(System.Globalization.CultureInfo.InvariantCulture));
        }

        using var response = await client.PostAsync(new Uri("/v2/models/alpha/infer", UriKind.Relative), content);
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Contains(message, (await response.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("error").GetString(), StringComparison.Ordinal);
    }
}
