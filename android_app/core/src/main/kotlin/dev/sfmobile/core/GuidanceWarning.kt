package dev.sfmobile.core

import java.math.BigDecimal
import java.math.MathContext
import java.math.RoundingMode
import kotlin.math.abs

/**
 * The warning `sfmobile generate` prints when the guidance scale lies outside the range a model
 * was distilled for (the manifest's `guidance.distilled_range`; its images degrade there), word
 * for word as sfmobile/pipeline.py's guidance_warning writes it (tests/golden/guidance/ holds
 * the two to the same cases).
 */
object GuidanceWarning {
    /** The one-line warning, or null inside the range (bounds included) or when [distilledRange] is null. */
    fun of(
        guidance: Double,
        distilledRange: ClosedFloatingPointRange<Double>?,
    ): String? {
        if (distilledRange == null || guidance in distilledRange) return null
        val low = formatG(distilledRange.start)
        val high = formatG(distilledRange.endInclusive)
        return "guidance ${formatG(guidance)} is outside the range this model was distilled for [$low, $high]; expect degraded images"
    }

    /**
     * Python's `format(x, "g")`: 6 significant digits (the exact binary value rounded half to
     * even), trailing zeros dropped, scientific (`1.23457e+06`, `1e-05`) when the rounded
     * exponent is below -4 or at least 6.
     */
    fun formatG(x: Double): String {
        if (x.isNaN()) return "nan"
        if (x.isInfinite()) return if (x > 0) "inf" else "-inf"
        if (x == 0.0) return if (1.0 / x < 0) "-0" else "0"
        val rounded = BigDecimal(x).round(MathContext(SIGNIFICANT, RoundingMode.HALF_EVEN))
        val exponent = rounded.precision() - rounded.scale() - 1
        if (exponent < -4 || exponent >= SIGNIFICANT) {
            val mantissa = rounded.movePointLeft(exponent).stripTrailingZeros().toPlainString()
            val sign = if (exponent < 0) "-" else "+"
            return "${mantissa}e$sign${abs(exponent).toString().padStart(2, '0')}"
        }
        return rounded.stripTrailingZeros().toPlainString()
    }

    private const val SIGNIFICANT = 6
}
