namespace Nin.Api.Tests;

/// <summary>
/// Tests that run heavy Torch work share one collection, so they don't fight for the two cores
/// (xunit runs collections in parallel).
/// </summary>
[CollectionDefinition(Name)]
public sealed class TorchCollection
{
    public const string Name = "torch";
}
