package dev.sfmobile.core

/**
 * Every error the core raises on purpose; the message names the file, field, tensor or option
 * at fault (the Kotlin side of sfmobile/errors.py). Anything else escaping the core is a bug.
 */
open class SfmobileException(
    message: String,
    cause: Throwable? = null,
) : Exception(message, cause)

/** A model or scheduler configuration is invalid or unsupported (Python: ConfigError). */
class ConfigException(
    message: String,
) : SfmobileException(message)

/** A tokenizer folder or prompt cannot be used (Python: TokenizerError). */
class TokenizerException(
    message: String,
) : SfmobileException(message)

/** A caller's argument is invalid: seed, shape, steps, guidance (Python: InputError). */
class InputException(
    message: String,
) : SfmobileException(message)

/** A bundle or its manifest is invalid, incomplete or changed (Python: BundleError). */
open class BundleException(
    message: String,
    cause: Throwable? = null,
) : SfmobileException(message, cause)

/** An Engine returned something the pipeline cannot use: a wrong shape, NaN or infinity. */
class EngineException(
    message: String,
) : SfmobileException(message)

/** The caller cancelled a generation between two steps. */
class CancelledException(
    message: String = "generation cancelled",
) : SfmobileException(message)
