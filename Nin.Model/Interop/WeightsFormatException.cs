namespace Nin.Model.Interop;

/// <summary>A weights file could not be read or does not fit the architecture; the message names the key or the defect.</summary>
public sealed class WeightsFormatException : Exception
{
    public WeightsFormatException(string message) : base(message)
    {
    }

    public WeightsFormatException(string message, Exception inner) : base(message, inner)
    {
    }
}
