using System.Diagnostics;
using Nin.Model.Checkpoints;

namespace Nin.Api.Tests.Model;

/// <summary>
/// <c>active.json</c> is read on every request, so <see cref="ActiveModelFile"/> keeps a copy; these hold that copy to the
/// file: this process's own changes at once, another writer's within <see cref="ActiveModelFile.MaxCacheAge"/>.
/// </summary>
[UnitTests]
public sealed class ActivePointerFileTests : IDisposable
{
    private readonly string root = Directory.CreateTempSubdirectory("nin-active-").FullName;

    public void Dispose() => Directory.Delete(root, recursive: true);

    [Fact]
    public void Own_changes_are_read_back_at_once_even_at_the_same_size()
    {
        var file = new ActiveModelFile(root);
        Assert.Null(file.Read());
        for (var version = 1; version <= 9; version++)
        {
            file.Write(new ActiveModel("m", version)); // same length every time, often within one file-system clock tick
            Assert.Equal(new ActiveModel("m", version), file.Read());
        }
    }

    [Fact]
    public void Another_writer_s_change_is_seen_within_the_cache_age()
    {
        var reader = new ActiveModelFile(root);
        new ActiveModelFile(root).Write(new ActiveModel("m", 1));
        Assert.Equal(1, reader.Read()!.Version);

        new ActiveModelFile(root).Write(new ActiveModel("m", 2)); // another process: same size, maybe the same time stamp
        Assert.Equal(2, WaitFor(reader, a => a?.Version == 2)!.Version);

        new ActiveModelFile(root).Write(new ActiveModel("longer-name", 3));
        Assert.Equal(new ActiveModel("longer-name", 3), reader.Read()); // a different size is seen at once
    }

    [Fact]
    public void A_deleted_or_emptied_pointer_reads_as_none()
    {
        var file = new ActiveModelFile(root);
        file.Write(new ActiveModel("m", 1));
        Assert.NotNull(file.Read());

        File.WriteAllBytes(file.Path, []);
        Assert.Null(file.Read()); // the size changed: re-read, and an empty file names nothing

        file.Write(new ActiveModel("m", 2));
        Assert.Equal(2, file.Read()!.Version);
        File.Delete(file.Path);
        Assert.Null(file.Read());
    }

    private static ActiveModel? WaitFor(ActiveModelFile file, Func<ActiveModel?, bool> done)
    {
        var clock = Stopwatch.StartNew();
        var limit = ActiveModelFile.MaxCacheAge + TimeSpan.FromSeconds(2);
        ActiveModel? seen;
        while (!done(seen = file.Read()) && clock.Elapsed < limit)
        {
            Thread.Sleep(20);
        }

        return seen;
    }
}
