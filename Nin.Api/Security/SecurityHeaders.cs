namespace Nin.Api.Security;

/// <summary>
/// Headers on every response that keep the service's pages from being framed or fed foreign content:
/// <c>X-Frame-Options: DENY</c> and CSP <c>frame-ancestors 'none'</c> (a framed dashboard on an open instance would make
/// same-origin requests), a Content-Security-Policy that allows only the service's own scripts, styles and connections
/// (the dashboard, Swagger UI and Hangfire's dashboard load nothing else; images may be data: and blob: URLs, as
/// previews and samples are; Swagger UI and Hangfire's pages may also apply inline styles), <c>X-Content-Type-Options: nosniff</c> and <c>Referrer-Policy: no-referrer</c>.
/// </summary>
public sealed class SecurityHeaders(RequestDelegate next)
{
    /// <summary>The policy of every page but Hangfire's.</summary>
    public const string ContentSecurityPolicy =
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; font-src 'self' data:; connect-src 'self'; " +
        "object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'";

    /// <summary>
    /// Swagger UI and Hangfire's dashboard apply inline styles (Swagger UI from script, Hangfire in its markup); their
    /// scripts are still their own files only.
    /// </summary>
    public const string InlineStylesPolicy =
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; font-src 'self' data:; connect-src 'self'; " +
        "object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'";

    public Task InvokeAsync(HttpContext context)
    {
        // Set as the response starts, so an error page (the exception handler clears headers) carries them too.
        context.Response.OnStarting(static state =>
        {
            var context = (HttpContext)state;
            var headers = context.Response.Headers;
            headers.XFrameOptions = "DENY";
            headers.XContentTypeOptions = "nosniff";
            headers["Referrer-Policy"] = "no-referrer";
            headers.ContentSecurityPolicy = context.Request.Path.StartsWithSegments("/hangfire") || context.Request.Path.StartsWithSegments("/swagger")
                ? InlineStylesPolicy
                : ContentSecurityPolicy;
            return Task.CompletedTask;
        }, context);
        return next(context);
    }
}
