using Nin.Model.Checkpoints;

namespace Nin.Api.Models;

/// <summary>
/// The route check of <c>/models/{name}/…</c>: a <c>{name}</c> that breaks <see cref="ModelName"/>'s rule is answered 400
/// before the handler runs, the same way on every model route.
/// </summary>
public static class ModelNameFilter
{
    public static TBuilder RequireValidModelName<TBuilder>(this TBuilder builder)
        where TBuilder : IEndpointConventionBuilder
    {
        builder.AddEndpointFilter(CheckName);
        return builder;
    }

    /// <summary>The 400 for a name that breaks the rule.</summary>
    public static Microsoft.AspNetCore.Http.HttpResults.ProblemHttpResult Invalid() =>
        TypedResults.Problem(statusCode: StatusCodes.Status400BadRequest, title: "Invalid model name.", detail: $"A model name must {ModelName.Rule}.");

    private static async ValueTask<object?> CheckName(EndpointFilterInvocationContext context, EndpointFilterDelegate next)
    {
        if (context.HttpContext.Request.RouteValues.TryGetValue("name", out var value) && !ModelName.IsValid(value as string))
        {
            return Invalid();
        }

        return await next(context);
    }
}
