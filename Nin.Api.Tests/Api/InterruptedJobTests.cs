using Microsoft.Extensions.DependencyInjection;
using Nin.Api.Training;
using Nin.Model.Checkpoints;

namespace Nin.Api.Tests.Api;

/// <summary>
/// A job interrupted after its model was stored (a crash during the final evaluation or clean-up) finishes when it runs
/// again, without training or storing its model a second time.
/// </summary>
[Collection(TorchCollection.Name)]
[UnitTests]
public sealed class InterruptedJobTests : IDisposable
{
    private readonly NinApiFactory factory = new(new Dictionary<string, string?> { ["Nin:SeedDefaultModel"] = "false" });

    public void Dispose() => factory.Dispose();

    [Fact]
    public async Task A_job_whose_model_was_stored_before_the_interruption_finishes_without_storing_it_again()
    {
        _ = factory.Server; // start the host
        var services = factory.Services;
        var jobs = services.GetRequiredService<ITrainingJobStore>();
        var models = services.GetRequiredService<ModelStore>();
        ServingFixture.AddRandom(models, "interrupted", seed: 2);

        // The record as a crash after storing leaves it: still Running, the stored version named, a checkpoint left behind.
        var job = jobs.Create(new TrainSettings("fashion-mnist", 2, 32, 0.1, 0, 0, 67, 0, "cpu", "interrupted", 64, 32, true));
        jobs.Update(job.JobId, j => j with { Status = JobStatus.Running, ModelName = "interrupted", ModelVersion = 1, Worker = "gone:1:dead" });
        var checkpoint = Directory.CreateDirectory(Path.Combine(jobs.JobDirectory(job.JobId), "checkpoint")).FullName;

        await services.GetRequiredService<TrainingJob>().RunAsync(job.JobId, CancellationToken.None);

        var done = jobs.Get(job.JobId)!;
        Assert.Equal(JobStatus.Succeeded, done.Status);
        Assert.Equal(("interrupted", 1), (done.ModelName, done.ModelVersion));
        Assert.Empty(done.Epochs); // nothing was trained again
        Assert.Single(models.List(), v => v.Name == "interrupted");
        Assert.False(Directory.Exists(checkpoint), "the finished job's checkpoint is removed");
    }
}
