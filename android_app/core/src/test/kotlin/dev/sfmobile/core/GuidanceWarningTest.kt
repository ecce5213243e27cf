package dev.sfmobile.core

import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.Test

class GuidanceWarningTest {
    private val cases = Golden.json("guidance/index.json").getAsJsonArray("cases").map { it.asJsonObject }

    @Test
    fun `Kotlin warns exactly when Python does, with Python's text (tests-golden-guidance)`() {
        assertTrue(cases.size >= 20)
        assertTrue(cases.any { it.get("warning").isJsonNull } && cases.any { !it.get("warning").isJsonNull })
        for (case in cases) {
            val range =
                case.get("distilled_range").takeUnless { it.isJsonNull }?.asJsonArray?.let {
                    it[0].asDouble..it[1].asDouble
                }
            val guidance = case.get("guidance").asDouble
            val python = case.get("warning").takeUnless { it.isJsonNull }?.asString
            assertEquals(python, GuidanceWarning.of(guidance, range), "guidance $guidance, range $range")
        }
    }

    @Test
    fun `formatG writes numbers as Python's g format does`() {
        val python =
            mapOf(
                7.5 to "7.5",
                100.0 to "100",
                -2.5 to "-2.5",
                -0.0 to "-0",
                999999.5 to "1e+06",
                0.0001 to "0.0001",
                0.00001234 to "1.234e-05",
                2.5e-300 to "2.5e-300",
                1.0e100 to "1e+100",
                Double.POSITIVE_INFINITY to "inf",
            )
        for ((value, text) in python) assertEquals(text, GuidanceWarning.formatG(value), "$value")
    }

    @Test
    fun `a manifest's distilled range gives the warning, none without one`() {
        val distilled = GuidanceSpec(cfgBatch = 1, input = true, distilledRange = 2.0..14.0)
        assertEquals(
            "guidance 1 is outside the range this model was distilled for [2, 14]; expect degraded images",
            distilled.warning(1.0),
        )
        assertEquals(null, distilled.warning(7.5))
        assertEquals(null, GuidanceSpec(cfgBatch = 2, input = false).warning(1.0))
    }
}
