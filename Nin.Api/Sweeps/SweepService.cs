using System.Text.Json;
using System.Text.Json.Nodes;
using Hangfire;
using Nin.Api.Training;
using Nin.Model.Checkpoints;
using Nin.Model.Experiments;

namespace Nin.Api.Sweeps;

/// <summary>What POST /sweeps comes to: the queued sweep, or why not (400 errors by field, 409 admission, 503 queue).</summary>
public sealed record SweepCreation(SweepSnapshot? Sweep, Dictionary<string, string[]>? Errors = null, AdmissionRefusal? Refused = null, string? QueueError = null);

/// <summary>
/// Sweeps: checks a request, expands its search space into trials (each checked by the training request's own
/// validator, so a trial's settings obey exactly the rules of POST /train), queues every trial as a training job, shows a
/// sweep from its trials' job records, and cancels it. Trials are stopped early where they run (<see cref="TrialJudge"/>);
/// the end, the best trial and its activation are <see cref="SweepSupervisor"/>'s.
/// </summary>
public sealed partial class SweepService(
    SweepStore store, ITrainingJobStore jobs, TrainRequestValidator validator, WorkerAdmission admission,
    TrainingNotifier notifier, JobCancellation cancellation, IBackgroundJobClient hangfire, ILogger<SweepService> logger)
{
    private static readonly JsonSerializerOptions Web = new(JsonSerializerDefaults.Web);

    public SweepCreation Create(SweepRequest request)
    {
        var errors = new Dictionary<string, string[]>();
        void Error(string field, string message) => errors[field] = [message];

        var method = request.Method ?? "grid";
        if (!SweepMetrics.Methods.Contains(method))
        {
            Error("method", $"Unknown method '{method}'. Known: {string.Join(", ", SweepMetrics.Methods)}.");
        }

        var metric = request.Metric ?? SweepMetrics.TestAccuracy;
        if (!SweepMetrics.Metrics.Contains(metric))
        {
            Error("metric", $"Unknown metric '{metric}'. Known: {string.Join(", ", SweepMetrics.Metrics)}.");
        }

        var stopping = EarlyStoppingOf(request.EarlyStopping, Error);
        var baseRequest = request.Base ?? new TrainRequest();
        if (baseRequest.Activate == true)
        {
            Error("base.activate", "A trial never activates its model; set the sweep's own 'activate' to activate the best trial's (through the promotion gate).");
        }

        // The base as given is held to POST /train's rules too, even where a searched value replaces a field in every
        // trial: an out-of-range value in the body is a 400, as the document says, not silently overridden.
        var baseErrors = validator.Validate(baseRequest).Errors; // reported with the trials' errors below

        var parameters = new List<SearchParameter>();
        if (request.Space is not { Count: > 0 } space)
        {
            Error("space", $"Name at least one setting to search: {string.Join(", ", SweepMetrics.Parameters.Keys)}.");
        }
        else
        {
            foreach (var (name, p) in space)
            {
                if (!SweepMetrics.Parameters.TryGetValue(name, out var kind))
                {
                    Error($"space.{name}", $"'{name}' cannot be searched. Searchable: {string.Join(", ", SweepMetrics.Parameters.Keys)}.");
                    continue;
                }

                var parameter = new SearchParameter(name, kind, p?.Values, p?.Min, p?.Max, p?.Log ?? false);
                if (SearchSpace.Problem(parameter, grid: method == "grid") is { } problem)
                {
                    Error($"space.{name}", problem);
                    continue;
                }

                parameters.Add(parameter);
            }
        }

        var gridSize = SearchSpace.GridSize(parameters);
        var maxTrials = request.MaxTrials ?? (method == "grid" ? gridSize : SweepMetrics.DefaultRandomTrials);
        if (maxTrials is < 1 or > SweepMetrics.MaxTrials)
        {
            Error("maxTrials", method == "grid" && request.MaxTrials is null
                ? $"The grid has {gridSize} combinations; a sweep runs at most {SweepMetrics.MaxTrials} trials. List fewer values."
                : $"maxTrials must be between 1 and {SweepMetrics.MaxTrials}; got {maxTrials}.");
        }
        else if (method == "grid" && errors.Count == 0 && gridSize > maxTrials)
        {
            Error("maxTrials", $"The grid has {gridSize} combinations, more than maxTrials {maxTrials}: list fewer values, raise maxTrials, or use random search.");
        }

        if (errors.Count > 0)
        {
            return new SweepCreation(null, errors);
        }

        var drawn = method == "grid" ? SearchSpace.Grid(parameters) : SearchSpace.Random(parameters, maxTrials, request.Seed ?? 0);
        var sweepId = SweepStore.NewId();
        var trials = new List<(SweepTrialRecord Record, TrainSettings Settings)>();
        foreach (var trial in drawn)
        {
            var (settings, trialErrors) = validator.Validate(Merge(baseRequest, trial.Values));
            foreach (var (field, messages) in trialErrors)
            {
                var key = trial.Values.ContainsKey(field) ? $"space.{field}" : $"base.{field}";
                errors.TryAdd(key, [.. messages.Select(m => trial.Values.ContainsKey(field) ? $"Trial {trial.Trial} ({Describe(trial.Values)}): {m}" : m)]);
            }

            if (settings is not null)
            {
                trials.Add((new SweepTrialRecord(trial.Trial, null, trial.Values, settings.Epochs), settings with { SweepId = sweepId, Trial = trial.Trial }));
            }
        }

        foreach (var (field, messages) in baseErrors)
        {
            errors.TryAdd($"base.{field}", messages);
        }

        if (errors.Count > 0)
        {
            return new SweepCreation(null, errors);
        }

        foreach (var settings in trials.Select(t => t.Settings).DistinctBy(s => (s.Device, s.BatchSize, s.ImageSize, s.Architecture, s.Dataset)))
        {
            if (admission.Check(settings) is { } refusal)
            {
                return new SweepCreation(null, Refused: refusal);
            }
        }

        var record = new SweepRecord(sweepId, DateTimeOffset.UtcNow, method, metric, stopping, maxTrials, request.Activate ?? false, request.Seed ?? 0,
            baseRequest, request.Space!, [.. trials.Select(t => t.Record)]);
        store.Save(record);

        // Every trial queued now, in order: with one worker they run one after another (later trials are judged against
        // earlier ones); with several, side by side.
        var queued = new List<JobSnapshot>();
        try
        {
            foreach (var (_, settings) in trials)
            {
                queued.Add(jobs.Create(settings, (client, created) => client.Enqueue<TrainingJob>(j => j.RunAsync(created.JobId, CancellationToken.None))));
            }
        }
        catch (Exception ex) when (ex is BackgroundJobClientException or IOException)
        {
            foreach (var job in queued)
            {
                TrainingApi.CancelJob(job.JobId, jobs, cancellation, notifier, hangfire);
            }

            store.Delete(sweepId);
            LogNotQueued(logger, sweepId, ex.GetBaseException().Message);
            if (ex is IOException io && DurableFile.IsDiskFull(io))
            {
                throw;
            }

            return new SweepCreation(null, QueueError: $"The job queue could not take trial {queued.Count + 1} of {trials.Count} ({ex.GetBaseException().GetType().Name}); the sweep was not created and its queued trials were cancelled. Retry shortly.");
        }

        record = record with { Trials = [.. record.Trials.Select((t, i) => t with { JobId = queued[i].JobId })] };
        store.Save(record);
        foreach (var job in queued)
        {
            notifier.JobUpdated(job);
        }

        LogCreated(logger, sweepId, method, trials.Count, stopping.Rule);
        return new SweepCreation(Snapshot(record));
    }

    public SweepSnapshot? Get(string sweepId) => store.Get(sweepId) is { } record ? Snapshot(record) : null;

    public IReadOnlyList<SweepSnapshot> List(int limit) => [.. store.List().Take(limit).Select(Snapshot)];

    /// <summary>The trials' job records (for the sweep's runs table), in trial order.</summary>
    public IReadOnlyList<JobSnapshot> TrialJobs(SweepRecord record) => [.. record.Trials.Select(t => jobs.TrialJob(t.JobId)).OfType<JobSnapshot>()];

    /// <summary>
    /// DELETE /sweeps/{id}: the sweep ends Cancelled and its unfinished trials are cancelled (a running one stops within a
    /// batch). Null when it had already ended (or another process is ending it).
    /// </summary>
    public SweepSnapshot? Cancel(SweepRecord record)
    {
        if (!store.TryClaimEnd(record.SweepId, WorkerIdentity.Current))
        {
            return null;
        }

        var leader = Leader(record, [.. record.Trials.Select(t => (t, jobs.TrialJob(t.JobId)))]);
        store.WriteOutcome(record.SweepId, new SweepOutcome(SweepStatus.Cancelled, DateTimeOffset.UtcNow, leader, null));
        foreach (var trial in record.Trials)
        {
            if (trial.JobId is { } id && jobs.TrialJob(id) is { IsFinished: false })
            {
                TrainingApi.CancelJob(id, jobs, cancellation, notifier, hangfire);
            }
        }

        LogCancelled(logger, record.SweepId);
        return Snapshot(record);
    }

    public SweepSnapshot Snapshot(SweepRecord record)
    {
        var outcome = store.Outcome(record.SweepId);
        var rows = record.Trials.Select(t => (Trial: t, Job: jobs.TrialJob(t.JobId))).ToList();
        var trials = rows.Select(r => Trial(r.Trial, r.Job, record.Metric)).ToList();
        return new SweepSnapshot(
            record.SweepId, outcome?.Status ?? SweepStatus.Running, record.Method, record.Metric, SweepMetrics.Maximise(record.Metric),
            record.EarlyStopping, record.MaxTrials, record.Activate, record.Base, record.Space, record.CreatedAt, outcome?.FinishedAt,
            trials, outcome is null ? Leader(record, rows) : outcome.Best, outcome?.Promotion,
            trials.Sum(t => t.EpochsCompleted), record.Trials.Sum(t => t.Epochs));
    }

    /// <summary>The best trial among those that stored a model: the best final value of the sweep's metric (ties: the earlier trial).</summary>
    public static SweepBest? Leader(SweepRecord record, IReadOnlyList<(SweepTrialRecord Trial, JobSnapshot? Job)> rows) =>
        rows.Where(r => r.Job is { Status: JobStatus.Succeeded, ModelName: not null, ModelVersion: not null, Epochs.Count: > 0 })
            .Select(r => (r.Trial, Job: r.Job!, Value: SweepMetrics.Oriented(r.Job!.Epochs.MaxBy(e => e.Epoch)!, record.Metric)))
            .OrderByDescending(r => r.Value).ThenBy(r => r.Trial.Trial)
            .Select(r => new SweepBest(r.Trial.Trial, r.Job.JobId, SweepMetrics.Maximise(record.Metric) ? r.Value : -r.Value, r.Job.ModelName!, r.Job.ModelVersion!.Value, r.Trial.Parameters))
            .FirstOrDefault();

    private static SweepTrial Trial(SweepTrialRecord trial, JobSnapshot? job, string metric)
    {
        var epochs = job?.Epochs.OrderBy(e => e.Epoch).ToList() ?? [];
        var maximise = SweepMetrics.Maximise(metric);
        double? best = epochs.Count == 0 ? null : maximise ? epochs.Max(e => SweepMetrics.Value(e, metric)) : epochs.Min(e => SweepMetrics.Value(e, metric));
        return new SweepTrial(trial.Trial, trial.JobId, trial.Parameters, job?.Status, trial.Epochs, epochs.Count,
            epochs.Count == 0 ? null : SweepMetrics.Value(epochs[^1], metric), best, job?.StopReason, job?.Error, job?.ModelName, job?.ModelVersion);
    }

    /// <summary>The base request with a trial's values in place of its fields (the request's own JSON names).</summary>
    private static TrainRequest Merge(TrainRequest baseRequest, IReadOnlyDictionary<string, JsonElement> values)
    {
        var node = JsonSerializer.SerializeToNode(baseRequest, Web)!.AsObject();
        foreach (var (name, value) in values)
        {
            node[name] = JsonNode.Parse(value.GetRawText());
        }

        return node.Deserialize<TrainRequest>(Web)!;
    }

    private static string Describe(IReadOnlyDictionary<string, JsonElement> values) =>
        string.Join(", ", values.Select(v => $"{v.Key} {v.Value.GetRawText()}"));

    private static EarlyStoppingSettings EarlyStoppingOf(EarlyStoppingRequest? request, Action<string, string> error)
    {
        var rule = request?.Rule ?? "median";
        if (!SweepMetrics.Rules.Contains(rule))
        {
            error("earlyStopping.rule", $"Unknown rule '{rule}'. Known: {string.Join(", ", SweepMetrics.Rules)}.");
        }

        var grace = request?.GraceEpochs ?? 1;
        if (grace is < 1 or > StoppingPolicy.MaxGraceEpochs)
        {
            error("earlyStopping.graceEpochs", $"graceEpochs must be between 1 and {StoppingPolicy.MaxGraceEpochs}; got {grace}.");
        }

        var minTrials = request?.MinTrials ?? 2;
        if (minTrials is < 1 or > StoppingPolicy.MaxMinTrials)
        {
            error("earlyStopping.minTrials", $"minTrials must be between 1 and {StoppingPolicy.MaxMinTrials}; got {minTrials}.");
        }

        var eta = request?.ReductionFactor ?? 3;
        if (eta is < StoppingPolicy.MinReductionFactor or > StoppingPolicy.MaxReductionFactor)
        {
            error("earlyStopping.reductionFactor", $"reductionFactor must be between {StoppingPolicy.MinReductionFactor} and {StoppingPolicy.MaxReductionFactor}; got {eta}.");
        }

        return new EarlyStoppingSettings(rule, grace, minTrials, eta);
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Sweep {SweepId}: {Method} search, {Trials} trials queued, early stopping {Rule}")]
    private static partial void LogCreated(ILogger logger, string sweepId, string method, int trials, string rule);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Sweep {SweepId}: not created, a trial could not be queued ({Reason})")]
    private static partial void LogNotQueued(ILogger logger, string sweepId, string reason);

    [LoggerMessage(Level = LogLevel.Information, Message = "Sweep {SweepId}: cancelled")]
    private static partial void LogCancelled(ILogger logger, string sweepId);
}
