namespace Nin.Model.Archives;

/// <summary>A zip archive that cannot be read: malformed, encrypted, or a compression method other than stored or deflate.</summary>
public class ZipFormatException(string message) : Exception(message);

/// <summary>A zip archive refused before its work is done because it exceeds a limit (entry count, sizes, overlaps); the message gives the figure.</summary>
public sealed class ZipLimitException(string message) : ZipFormatException(message);
