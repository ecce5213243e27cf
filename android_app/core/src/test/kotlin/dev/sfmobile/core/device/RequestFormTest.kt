package dev.sfmobile.core.device

import dev.sfmobile.core.GenerationRequest
import dev.sfmobile.core.Golden
import dev.sfmobile.core.InputException
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertThrows
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.Test
import java.io.File

class RequestFormTest {
    @Test
    fun `form fields become a request, the seed read as unsigned 64-bit`() {
        assertEquals(
            GenerationRequest("a fox", "blurry", 8, 7.5f, 42),
            parseRequest(" a fox ", "blurry ", "8", " 7.5", "42"),
        )
        assertEquals(-1L, parseRequest("p", "", "1", "0", "18446744073709551615").seed)
    }

    @Test
    fun `each bad field is named`() {
        val cases =
            mapOf(
                "prompt is empty" to listOf(" ", "", "8", "7.5", "0"),
                "steps must be" to listOf("p", "", "0", "7.5", "0"),
                "guidance must be" to listOf("p", "", "8", "-1", "0"),
                "seed must be" to listOf("p", "", "8", "7.5", "18446744073709551616"),
            )
        for ((expected, f) in cases) {
            val error = assertThrows(InputException::class.java) { parseRequest(f[0], f[1], f[2], f[3], f[4]) }
            assertTrue(error.message!!.startsWith(expected), error.message)
        }
    }

    @Test
    fun `the guidance field warns outside the bundle's distilled range, from its manifest`() {
        val distilled = BundleSummary.of(BundleEntry("int8", File(Golden.dir, "bundles/valid-int8-guidance-input"), 0))
        assertEquals(1.0..14.0, distilled.distilledRange)
        assertEquals(
            "guidance 0.5 is outside the range this model was distilled for [1, 14]; expect degraded images",
            guidanceWarning(distilled, " 0.5"),
        )
        assertEquals(null, guidanceWarning(distilled, "7.5"))
        assertEquals(null, guidanceWarning(distilled, "abc"), "not a scale yet: Generate names the field")
        val plain = BundleSummary.of(BundleEntry("plain", File(Golden.dir, "bundles/valid"), 0))
        assertEquals(null, plain.distilledRange)
        assertEquals(null, guidanceWarning(plain, "0.5"))
        assertEquals(null, guidanceWarning(null, "0.5"))
    }
}
