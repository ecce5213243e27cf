package dev.sfmobile.core

import com.google.gson.JsonArray
import com.google.gson.JsonElement
import com.google.gson.JsonNull
import com.google.gson.JsonObject
import com.google.gson.JsonPrimitive
import com.google.gson.stream.JsonReader
import com.google.gson.stream.JsonToken
import com.google.gson.stream.MalformedJsonException
import java.io.IOException
import java.io.StringReader
import java.math.BigDecimal

/**
 * RFC 8259 JSON, as closure rule 11 (export/README.md) and Python's reader want it. Gson's
 * JsonParser is lenient (it takes NaN, Infinity, bare words, comments, single quotes); this
 * reads with a strict JsonReader and names the path of the value it refuses, e.g.
 * `latent/scaling_factor`. Numbers keep their exact text (BigDecimal) for JsonFields' integer rules.
 */
internal class StrictJson private constructor(
    text: String,
    private val fail: (path: String, message: String) -> Nothing,
) {
    private val reader = JsonReader(StringReader(text)) // not lenient: the RFC's grammar only
    private val path = ArrayList<String>()

    private fun here(): String = path.joinToString("/")

    /** Gson peeks the next value (hasNext, peek) before reading it: a bare word fails there. */
    private fun <T> peeking(read: () -> T): T =
        try {
            read()
        } catch (error: MalformedJsonException) {
            fail(here(), "not a JSON value; NaN and Infinity are not JSON numbers (closure rule 11, export/README.md)")
        }

    private fun value(): JsonElement {
        val token = peeking { reader.peek() }
        return when (token) {
            JsonToken.BEGIN_OBJECT -> obj()
            JsonToken.BEGIN_ARRAY -> array()
            JsonToken.STRING -> JsonPrimitive(reader.nextString())
            JsonToken.NUMBER -> JsonPrimitive(BigDecimal(reader.nextString()))
            JsonToken.BOOLEAN -> JsonPrimitive(reader.nextBoolean())
            JsonToken.NULL -> JsonNull.INSTANCE.also { reader.nextNull() }
            else -> fail(here(), "unexpected $token")
        }
    }

    private fun obj(): JsonObject {
        val result = JsonObject()
        reader.beginObject()
        while (reader.hasNext()) {
            val name = reader.nextName()
            path += name
            result.add(name, value())
            path.removeAt(path.lastIndex)
        }
        reader.endObject()
        return result
    }

    private fun array(): JsonArray {
        val result = JsonArray()
        reader.beginArray()
        while (true) {
            path += result.size().toString() // the element hasNext peeks at
            val more = peeking { reader.hasNext() }
            if (more) result.add(value())
            path.removeAt(path.lastIndex)
            if (!more) break
        }
        reader.endArray()
        return result
    }

    private fun document(): JsonElement =
        try {
            value().also { if (reader.peek() != JsonToken.END_DOCUMENT) fail("", "text after the JSON value") }
        } catch (error: IOException) {
            fail(here(), "not valid JSON (${error.message?.replace(GSON_ADVICE, "malformed")})")
        } catch (error: IllegalStateException) {
            fail(here(), "not valid JSON (${error.message})")
        }

    companion object {
        private val LITERALS = setOf("true", "false", "null")
        private const val ESCAPES = "\"\\/bfnrtu"

        /**
         * What Gson 2.10's strict reader still lets through and RFC 8259 (and Python) refuse:
         * literals in another case (`TRUE`), the escape `\'`, raw control characters in strings.
         */
        private fun lexicalFault(text: String): String? {
            var inString = false
            var i = 0
            while (i < text.length) {
                val c = text[i]
                if (inString) {
                    if (c == '"') inString = false
                    if (c < ' ') return "control character U+%04X in a string".format(c.code)
                    if (c == '\\' && text.getOrElse(++i) { ' ' } !in ESCAPES) return "invalid escape in a string"
                } else if (c == '"') {
                    inString = true
                } else if (c.isLetter() && text.getOrElse(i - 1) { ' ' }.let { !it.isLetterOrDigit() && it != '.' }) {
                    val word = text.substring(i).takeWhile { it.isLetter() }
                    if (word !in LITERALS) return "$word is not a JSON literal"
                }
                i++
            }
            return null
        }

        /** Gson's message begins by suggesting lenient parsing, which is the opposite of the rule. */
        private const val GSON_ADVICE = "Use JsonReader.setLenient(true) to accept malformed JSON"

        /** The JSON value of `text`; `fail(path, message)` is called (and throws) on anything not RFC 8259. */
        fun parse(
            text: String,
            fail: (path: String, message: String) -> Nothing,
        ): JsonElement {
            val json = StrictJson(text, fail).document()
            lexicalFault(text)?.let { fail("", "not valid JSON ($it)") }
            return json
        }
    }
}
