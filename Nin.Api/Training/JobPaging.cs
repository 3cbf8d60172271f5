using System.Buffers.Text;
using System.Globalization;
using System.Text;

namespace Nin.Api.Training;

/// <summary>
/// A page request over the job records, newest first: at most <see cref="Limit"/> records after <see cref="After"/>
/// (the position of the last record of the previous page), only those with one of <see cref="Statuses"/> when given.
/// </summary>
public sealed record JobQuery(int Limit, JobCursor? After = null, IReadOnlyCollection<JobStatus>? Statuses = null)
{
    public const int DefaultLimit = 50;
    public const int MaxLimit = 500;

    public bool Matches(JobSnapshot job) => Statuses is not { Count: > 0 } s || s.Contains(job.Status);
}

/// <summary>One page: the records, and the cursor of the next page (null on the last one).</summary>
public sealed record JobPage(IReadOnlyList<JobSnapshot> Items, string? NextCursor);

/// <summary>
/// A position in the newest-first order of job records: creation time (to the microsecond, as PostgreSQL keeps it) and
/// id, so records created in the same microsecond still have one order. Sent to clients as an opaque base64url string.
/// </summary>
public readonly record struct JobCursor(long CreatedMicroseconds, string JobId)
{
    public static JobCursor Of(JobSnapshot job) => new(Microseconds(job.CreatedAt), job.JobId);

    public static long Microseconds(DateTimeOffset at) => (at.UtcTicks - DateTimeOffset.UnixEpoch.UtcTicks) / 10;

    public DateTimeOffset CreatedAt => DateTimeOffset.UnixEpoch.AddTicks(CreatedMicroseconds * 10);

    /// <summary>Whether <paramref name="job"/> comes after this position (is older, or as old with a lower id).</summary>
    public bool IsBefore(JobSnapshot job)
    {
        var created = Microseconds(job.CreatedAt);
        return created < CreatedMicroseconds || (created == CreatedMicroseconds && string.CompareOrdinal(job.JobId, JobId) < 0);
    }

    public override string ToString() =>
        Base64Url.EncodeToString(Encoding.UTF8.GetBytes(CreatedMicroseconds.ToString(CultureInfo.InvariantCulture) + "." + JobId));

    /// <summary>The cursor a page handed out, or null when <paramref name="text"/> is not one.</summary>
    public static JobCursor? Parse(string? text)
    {
        if (string.IsNullOrEmpty(text) || text.Length > 128)
        {
            return null;
        }

        try
        {
            var plain = Encoding.UTF8.GetString(Base64Url.DecodeFromChars(text));
            var dot = plain.IndexOf('.', StringComparison.Ordinal);
            return dot > 0 && long.TryParse(plain.AsSpan(0, dot), NumberStyles.None, CultureInfo.InvariantCulture, out var us) && dot < plain.Length - 1
                ? new JobCursor(us, plain[(dot + 1)..])
                : null;
        }
        catch (FormatException)
        {
            return null;
        }
    }
}

/// <summary>The newest-first order both stores use.</summary>
public static class JobOrder
{
    public static IOrderedEnumerable<JobSnapshot> NewestFirst(IEnumerable<JobSnapshot> jobs) =>
        jobs.OrderByDescending(j => JobCursor.Microseconds(j.CreatedAt)).ThenByDescending(j => j.JobId, StringComparer.Ordinal);

    /// <summary>A page of <paramref name="jobs"/> (already in memory) for <paramref name="query"/>.</summary>
    public static JobPage Page(IEnumerable<JobSnapshot> jobs, JobQuery query)
    {
        var matching = NewestFirst(jobs.Where(query.Matches));
        var after = query.After is { } cursor ? matching.Where(cursor.IsBefore) : matching;
        var items = after.Take(query.Limit + 1).ToList();
        return Cut(items, query.Limit);
    }

    /// <summary>Up to <paramref name="limit"/> of <paramref name="items"/> (fetched with one extra to know whether more follow).</summary>
    public static JobPage Cut(List<JobSnapshot> items, int limit)
    {
        if (items.Count <= limit)
        {
            return new JobPage(items, null);
        }

        items.RemoveRange(limit, items.Count - limit);
        return new JobPage(items, JobCursor.Of(items[^1]).ToString());
    }
}
