package dev.sfmobile.core.device

import dev.sfmobile.core.GenerationRequest
import dev.sfmobile.core.GuidanceWarning
import dev.sfmobile.core.InputException

/**
 * The generation form's text fields as a [GenerationRequest], or an InputException naming the
 * field. The seed is an unsigned 64-bit decimal (docs/noise.md: 0 <= seed < 2^64), held in a
 * Long's bits as the core's noise takes it.
 */
fun parseRequest(
    prompt: String,
    negativePrompt: String,
    steps: String,
    guidance: String,
    seed: String,
): GenerationRequest {
    if (prompt.isBlank()) throw InputException("prompt is empty")
    val stepCount =
        steps.trim().toIntOrNull()?.takeIf { it in 1..MAX_STEPS }
            ?: throw InputException("steps must be a whole number from 1 to $MAX_STEPS, got '$steps'")
    val scale =
        guidance.trim().toFloatOrNull()?.takeIf { it.isFinite() && it >= 0f }
            ?: throw InputException("guidance must be a number >= 0, got '$guidance'")
    val seedBits =
        try {
            java.lang.Long.parseUnsignedLong(seed.trim())
        } catch (e: NumberFormatException) {
            throw InputException("seed must be a whole number from 0 to 18446744073709551615, got '$seed'")
        }
    return GenerationRequest(prompt.trim(), negativePrompt.trim(), stepCount, scale, seedBits)
}

/**
 * The warning to show beside the form's [guidance] text for [bundle] (a scale outside the range
 * it was distilled for: [GuidanceWarning], the text `sfmobile generate` prints); null inside it,
 * for a bundle without a recorded range, or while the text is not a valid scale (Generate names that).
 */
fun guidanceWarning(
    bundle: BundleSummary?,
    guidance: String,
): String? {
    val scale = guidance.trim().toDoubleOrNull()?.takeIf { it.isFinite() && it >= 0.0 } ?: return null
    return GuidanceWarning.of(scale, bundle?.distilledRange)
}

/** The most steps the form accepts: the scheduler's 1000 training timesteps. */
const val MAX_STEPS = 1000
