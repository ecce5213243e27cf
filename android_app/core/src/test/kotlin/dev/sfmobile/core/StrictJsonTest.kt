package dev.sfmobile.core

import com.google.gson.JsonParser
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Test
import kotlin.test.assertFailsWith

/** What Python's json.loads refuses (closure rule 11 adds NaN and Infinity), StrictJson refuses, naming where. */
class StrictJsonTest {
    private class Refused(
        message: String,
    ) : RuntimeException(message)

    private fun parse(text: String) = StrictJson.parse(text) { path, message -> throw Refused("$path: $message") }

    @Test
    fun `RFC 8259 text reads as Gson reads it, numbers keeping their exact text`() {
        val text = """{"a": [1, 2.50, -3e2, true, null, "x\n"], "b": {"c": 64.0}}"""
        assertEquals(JsonParser.parseString(text), parse(text))
        assertEquals("2.50", parse("[2.50]").asJsonArray[0].asBigDecimal.toPlainString())
    }

    @Test
    fun `bare words, comments, quotes, escapes, raw controls and trailing text are refused`() {
        val refused =
            mapOf(
                """{"a": {"b": [1, NaN]}}""" to "a/b/1: ",
                """{"a": Infinity}""" to "a: ",
                """{"a": -Infinity}""" to "a: ",
                """{"a": yes}""" to "a: ",
                """{"a": 'x'}""" to "a: ",
                """{"a": 1 /* c */}""" to "",
                """{"a": 1} 2""" to ": ",
                """{"a": 1,}""" to "",
                """{"a": TRUE}""" to "",
                "{\"a\": \"x\ty\"}" to "",
                """{"a": "it\'s"}""" to "",
            )
        for ((text, where) in refused) {
            val error = assertFailsWith<Refused>(text) { parse(text) }
            assertEquals(true, error.message!!.startsWith(where), "$text: ${error.message}")
        }
    }
}
