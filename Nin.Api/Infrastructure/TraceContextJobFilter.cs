using System.Diagnostics;
using Hangfire.Client;
using Hangfire.Server;

namespace Nin.Api.Infrastructure;

/// <summary>
/// Carries the W3C trace context of the request that queued a job (<c>traceparent</c>, from the caller's header or the
/// request's own span) into the job: kept as a job parameter when the job is created, and the parent of a
/// <c>nin.training.job</c> span while it runs, on whichever worker takes it. Without tracing the span still exists
/// (no listener samples it away), so the job's log lines carry the request's trace id.
/// </summary>
public sealed class TraceContextJobFilter : IClientFilter, IServerFilter
{
    public const string SourceName = "Nin.Training";
    public const string Parameter = "traceparent";
    private const string SpanItem = "nin.span";

    public static readonly ActivitySource Source = new(SourceName);

    public void OnCreating(CreatingContext context)
    {
        if (Activity.Current is { IdFormat: ActivityIdFormat.W3C } current)
        {
            context.SetJobParameter(Parameter, current.Id);
        }
    }

    public void OnCreated(CreatedContext context)
    {
    }

    public void OnPerforming(PerformingContext context)
    {
        var parent = context.GetJobParameter<string>(Parameter);
        if (string.IsNullOrEmpty(parent) || !ActivityContext.TryParse(parent, null, out var parentContext))
        {
            return;
        }

        var name = $"nin.job {context.BackgroundJob.Job.Type.Name}";
        var span = Source.StartActivity(name, ActivityKind.Consumer, parentContext)
            ?? new Activity(name).SetParentId(parent).Start();
        span.SetTag("hangfire.job_id", context.BackgroundJob.Id);
        context.Items[SpanItem] = span;
    }

    public void OnPerformed(PerformedContext context)
    {
        if (context.Items.TryGetValue(SpanItem, out var item) && item is Activity span)
        {
            if (context.Exception is { } ex)
            {
                span.SetStatus(ActivityStatusCode.Error, ex.GetType().Name);
            }

            span.Stop();
        }
    }
}
