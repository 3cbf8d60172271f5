using System.Security.Cryptography;
using Nin.Model.Checkpoints;
using Nin.Model.Network;
using TorchSharp;
using static TorchSharp.torch;

namespace Nin.Api.Tests.Model;

[Collection(TorchCollection.Name)]
[UnitTests]
public sealed class EpochCheckpointTests
{
    private static string Hash(string path) => Convert.ToHexStringLower(SHA256.HashData(File.ReadAllBytes(path)));

    [Fact]
    public void A_save_that_fails_part_way_leaves_weights_and_state_of_the_same_epoch()
    {
        var root = Directory.CreateTempSubdirectory("nin-epoch-ckpt-").FullName;
        try
        {
            var dir = Path.Combine(root, "checkpoint");
            manual_seed(1);
            using var net = NetworkArchitectures.Nin.Create(1, 3);
            using var optimizer = optim.SGD(net.parameters(), 0.1);
            var e1 = new EpochMetrics(1, 1.0, 0.5, 0.5, 10, 1);
            EpochCheckpoint.Save(dir, 1, net, optimizer, [e1]);
            var epoch1Weights = Hash(Path.Combine(dir, "weights.bin"));

            // The weights move on (epoch 2), and the save of epoch 2 is cut short after its first files: a
            // folder squats where the state file is written, as a crash between the two writes would leave it.
            using (no_grad())
            {
                foreach (var p in net.parameters())
                {
                    p.add_(0.5f);
                }
            }

            var epoch2File = Path.Combine(root, "epoch2.bin");
            net.save(epoch2File);
            var epoch2Weights = Hash(epoch2File);
            Directory.CreateDirectory(Path.Combine(dir, "state.json.tmp"));
            try
            {
                EpochCheckpoint.Save(dir, 2, net, optimizer, [e1, e1 with { Epoch = 2 }]);
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
            }

            var resume = EpochCheckpoint.Read(dir);
            Assert.NotNull(resume);
            var expected = resume.CompletedEpochs == 1 ? epoch1Weights : epoch2Weights;
            Assert.True(expected == Hash(resume.WeightsPath),
                $"state.json says epoch {resume.CompletedEpochs}, but weights.bin holds epoch {(Hash(resume.WeightsPath) == epoch2Weights ? 2 : 1)}'s weights");
            Assert.Equal(resume.CompletedEpochs, resume.History.Count);
        }
        finally
        {
            Directory.Delete(root, recursive: true);
        }
    }
}
