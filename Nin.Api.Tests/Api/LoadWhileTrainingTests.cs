using System.Collections.Concurrent;
using System.Net;
using System.Net.Http.Json;
using Nin.Api.Models;
using Nin.Api.Serving;
using Nin.Api.Training;

namespace Nin.Api.Tests.Api;

/// <summary>Serving keeps answering while a job trains its own network and while its result is activated.</summary>
[Collection(TorchCollection.Name)]
[HostTests]
public sealed class LoadWhileTrainingTests
{
    [Fact]
    public async Task Predictions_never_fail_while_a_job_trains_and_its_result_is_activated()
    {
        // Four clients in a tight loop would meet the per-client rate limit, which is not what this test is about.
        using var fixture = new ServingFixture(new Dictionary<string, string?> { ["RateLimiting:Enabled"] = "false" });
        using var client = fixture.Factory.CreateClient();
        using var response = await client.PostAsJsonAsync(new Uri("/train", UriKind.Relative), new
        {
            // The robust recipe: a model that learned nothing (d2l's on so few images) would rightly not be activated.
            recipe = "robust", epochs = 4, batchSize = 16, imageSize = 67, maxTrainImages = 256, maxTestImages = 64, modelName = "fresh", activate = true,
        });
        Assert.Equal(HttpStatusCode.Accepted, response.StatusCode);
        var jobId = (await response.Content.ReadFromJsonAsync<TrainAccepted>(TrainingApiTests.Json))!.JobId;

        var failures = new ConcurrentBag<string>();
        var served = new ConcurrentBag<string>();
        using var stop = new CancellationTokenSource();
        var png = TestImages.FashionImage(3);
        var load = Enumerable.Range(0, 4).Select(async _ =>
        {
            while (!stop.IsCancellationRequested)
            {
                using var form = PredictApiTests.Form(("images", "x.png", png, "image/png"));
                using var r = await client.PostAsync(new Uri("/predict", UriKind.Relative), form);
                if (r.StatusCode == HttpStatusCode.OK)
                {
                    served.Add((await r.Content.ReadFromJsonAsync<PredictResponse>())!.Model.Name);
                }
                else
                {
                    failures.Add($"{(int)r.StatusCode}: {await r.Content.ReadAsStringAsync()}");
                }
            }
        }).ToArray();

        var job = await TrainingApiTests.WaitForAsync(client, jobId, j => j.Status is JobStatus.Succeeded or JobStatus.Failed or JobStatus.Cancelled, TimeSpan.FromMinutes(3));
        Assert.Equal(JobStatus.Succeeded, job.Status);
        Assert.True(job.Warnings is not { Count: > 0 }, string.Join(" ", job.Warnings ?? []));
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (!served.Contains("fresh") && DateTime.UtcNow < deadline)
        {
            await Task.Delay(100);
        }

        await stop.CancelAsync();
        await Task.WhenAll(load);

        Assert.Empty(failures);
        Assert.Contains("alpha", served);   // served while training
        Assert.Contains("fresh", served);   // and the new version once activated
        var models = await client.GetFromJsonAsync<ModelsResponse>(new Uri("/models", UriKind.Relative), TrainingApiTests.Json);
        Assert.Equal("fresh", models!.Active!.Name);
    }
}
