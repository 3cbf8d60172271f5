using Nin.Api.Serving;
using Nin.Model.Checkpoints;
using Nin.Model.Evaluation;

namespace Nin.Api.Models;

/// <summary>How an activation ended.</summary>
public enum ActivationState
{
    /// <summary>The version serves here and the active pointer names it.</summary>
    Activated,

    /// <summary>The promotion gate refused it (<see cref="ActivationOutcome.Decision"/> says why).</summary>
    Refused,

    /// <summary>The gate is off and the caller refuses versions with warnings (a run that learned nothing).</summary>
    Warned,

    /// <summary>It could not be loaded here (<see cref="ActivationOutcome.Cause"/>); the active version did not change.</summary>
    CannotLoad,

    /// <summary>It was deleted meanwhile.</summary>
    Gone,
}

/// <summary>What <see cref="ModelActivation.ActivateAsync"/> did.</summary>
/// <param name="State">How it ended.</param>
/// <param name="Decision">The promotion gate's decision, when the gate is on.</param>
/// <param name="Cause">Why the version could not be loaded (<see cref="ActivationState.CannotLoad"/>).</param>
public sealed record ActivationOutcome(ActivationState State, PromotionDecision? Decision, string? Cause = null);

/// <summary>
/// Safe activation, one sequence for every caller (POST .../activate, the end of a sweep): the promotion gate
/// (<see cref="ModelPromotion"/>), then load and warm the version on this replica (<see cref="ModelRegistry.PrepareAsync"/>),
/// and only then move the active pointer, so a version that cannot serve never becomes the active one.
/// </summary>
public sealed class ModelActivation(ModelStore store, ModelRegistry registry, ModelPromotion promotion)
{
    /// <summary>
    /// Activates <paramref name="candidate"/>. <paramref name="force"/> overrides the gate (its decision is still made and
    /// returned, without evaluating for it); <paramref name="refuseWarnings"/> holds a version with warnings back when the
    /// gate is off (the gate itself refuses a did-not-learn version). A full disk while loading is thrown, not returned:
    /// it is the server's condition (507), not the version's.
    /// </summary>
    public async Task<ActivationOutcome> ActivateAsync(ModelVersionInfo candidate, bool force, bool refuseWarnings, CancellationToken cancellationToken)
    {
        PromotionDecision? decision = null;
        if (promotion.Options.Enabled)
        {
            decision = await promotion.DecideAsync(candidate, evaluateMissing: !force, cancellationToken);
            if (!decision.Allowed && !force)
            {
                return new ActivationOutcome(ActivationState.Refused, decision);
            }
        }
        else if (refuseWarnings && candidate.Metadata.Warnings is { Count: > 0 })
        {
            return new ActivationOutcome(ActivationState.Warned, null);
        }

        try
        {
            await registry.PrepareAsync(candidate.Name, candidate.Version, cancellationToken);
        }
        catch (ModelLoadException ex) when (!DurableFile.IsDiskFull(ex))
        {
            return new ActivationOutcome(ActivationState.CannotLoad, decision, ex.Cause);
        }

        return store.Activate(candidate.Name, candidate.Version)
            ? new ActivationOutcome(ActivationState.Activated, decision)
            : new ActivationOutcome(ActivationState.Gone, decision);
    }
}
