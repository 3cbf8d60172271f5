// Hangfire keeps its job storage in a process-wide static (JobStorage.Current): two test hosts
// starting at once would share and dispose each other's storage. One host at a time also suits
// the two cores CI has.
[assembly: CollectionBehavior(DisableTestParallelization = true)]
