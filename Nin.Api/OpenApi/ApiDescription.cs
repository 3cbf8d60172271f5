namespace Nin.Api.OpenApi;

/// <summary>The document's introduction (Markdown), including the SignalR hub that OpenAPI cannot describe.</summary>
internal static class ApiDescription
{
    public const string Text = """
        Trains and serves the Network-in-Network image classifier (d2l, chapter 8.3) with TorchSharp.

        * **Train**: `POST /train` queues a job (one runs at a time); `GET /train/{jobId}` follows it; `DELETE /train/{jobId}` cancels it.
        * **Models**: every finished job stores a model version; `GET /models` lists them, `POST /models/{name}/versions/{version}/activate` chooses the one served.
          `GET /models/{name}/versions/{version}/export?format=onnx|safetensors|pytorch` takes a version elsewhere (ONNX Runtime, Triton, d2l's PyTorch code);
          `POST /models/{name}/versions` imports d2l PyTorch weights (`.pt`/`.pth` state_dict or `.safetensors`) as a new version.
        * **Predict**: `POST /predict` classifies uploaded images with the active model, through ONNX Runtime on a CPU or TorchSharp (`Serving:Engine`; each answer names it).
          `/v2/...` is the same model over the KServe v2 / Open Inference Protocol, binary tensor data extension included.
        * The dashboard at `/` uses exactly this API and the hub below.

        Errors are [RFC 9457](https://www.rfc-editor.org/rfc/rfc9457) `application/problem+json` (`ProblemDetails`); a 400 from `POST /train`
        is a `ValidationProblem` whose `errors` map each request field (camelCase) to its messages. The `/v2` routes answer errors as `{ "error": "..." }`, as that protocol requires.

        ## Live training updates: SignalR hub `/hubs/training`

        Connect with any SignalR client (JSON protocol; enums are strings, properties camelCase), e.g. in JavaScript:

        ```js
        const hub = new signalR.HubConnectionBuilder().withUrl("/hubs/training").withAutomaticReconnect().build();
        hub.on("EpochCompleted", e => console.log(e.epoch, e.testAccuracy));
        await hub.start();
        const jobs = await hub.invoke("SubscribeAll");
        ```

        **Methods** the client invokes (groups are per connection: subscribe again after a reconnect):

        | method | arguments | returns | |
        |---|---|---|---|
        | `Subscribe` | `jobId: string` | `JobSnapshot` | Follow one job. Also sends its snapshot as `JobUpdated` at once, so a late subscriber misses nothing. Unknown id: a hub error. |
        | `Unsubscribe` | `jobId: string` | – | Stop following that job. |
        | `SubscribeAll` | – | `JobSnapshot[]` (newest first) | Follow every job, current and future. |
        | `UnsubscribeAll` | – | – | Stop following every job. |

        **Events** the server sends to subscribers:

        | event | payload |
        |---|---|
        | `JobUpdated` | `JobSnapshot` (as `GET /train/{jobId}`): `{ jobId, status, request, device, progress: { epoch, batch, batches }, epochs: EpochMetrics[], modelName, modelVersion, error, createdAt, startedAt, finishedAt }`; sent when a job is queued, starts, completes an epoch and ends. |
        | `BatchProgress` | `{ jobId, epoch, batch, batches, loss }`: a few times a second while a job trains. |
        | `EpochCompleted` | `{ jobId, epoch, epochs, trainLoss, trainAccuracy, testAccuracy, examplesPerSecond, seconds }`: after every epoch's test pass. |
        | `JobFinished` | `{ jobId, status, modelName, modelVersion, error }`: `status` is `Succeeded`, `Failed` or `Cancelled`; a success names the stored model version. |

        `status` is one of `Queued`, `Running`, `Succeeded`, `Failed`, `Cancelled`.
        """;
}
