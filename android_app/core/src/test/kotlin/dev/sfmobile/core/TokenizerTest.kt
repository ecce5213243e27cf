package dev.sfmobile.core

import org.junit.jupiter.api.Assertions.assertArrayEquals
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.io.TempDir
import java.io.File
import kotlin.test.assertFailsWith

class TokenizerTest {
    private val tokenizer = Tokenizer.default()

    @Test
    fun `every golden prompt gives Python's ids`() {
        val cases = Golden.json("tokenizer/cases.json").getAsJsonArray("cases").map { it.asJsonObject }
        assertTrue(cases.size >= 10)
        for (case in cases) {
            val expected = case.getAsJsonArray("ids").map { it.asInt }.toIntArray()
            assertArrayEquals(expected, tokenizer.encode(case.get("text").asString), case.get("text").asString)
        }
    }

    @Test
    fun `the shipped vocabulary has CLIP's size and special ids`() {
        assertEquals(49408, tokenizer.vocab.size)
        assertEquals(49406, tokenizer.startId)
        assertEquals(49407, tokenizer.endId)
        assertEquals(49407, tokenizer.padId)
    }

    @Test
    fun `a long prompt is cut to 75 tokens with a warning`() {
        val warnings = ArrayList<String>()
        val ids = Tokenizer.default { warnings += it }.encode(List(100) { "cat" }.joinToString(" "))
        assertEquals(77, ids.size)
        assertEquals(49407, ids[76])
        assertEquals(listOf("prompt is 100 tokens long; dropped the last 25 tokens (CLIP keeps 75)"), warnings)
    }

    @Test
    fun `a lone surrogate is refused`() {
        val error = assertFailsWith<TokenizerException> { tokenizer.encode("a\uD800b") }
        assertEquals("prompt is not valid Unicode text: lone surrogate U+D800 at index 1", error.message)
    }

    @Test
    fun `a folder is read like Python reads it`(
        @TempDir dir: File,
    ) {
        File(dir, "vocab.json").writeText(
            com.google.gson
                .Gson()
                .toJson(tokenizer.vocab),
        )
        File(dir, "merges.txt").writeText("#version: 0.2\n" + tokenizer.merges.joinToString("\n") { "${it.first} ${it.second}" } + "\n")
        File(dir, "special_tokens_map.json").writeText("""{"pad_token": {"content": "!"}}""")
        val fromFolder = Tokenizer.fromFolder(dir)
        assertEquals(0, fromFolder.padId)
        assertArrayEquals(tokenizer.encode("a photo of a cat").copyOf(7), fromFolder.encode("a photo of a cat").copyOf(7))
        assertEquals(0, fromFolder.encode("a photo of a cat")[76])
    }

    @Test
    fun `a missing folder or file is named`(
        @TempDir dir: File,
    ) {
        val missing = File(dir, "nope")
        assertEquals(
            "tokenizer folder $missing does not exist or is not a folder",
            assertFailsWith<TokenizerException> { Tokenizer.fromFolder(missing) }.message,
        )
        File(dir, "vocab.json").writeText("""{"a": 1.5}""")
        assertEquals(
            "tokenizer file ${File(dir, "vocab.json")} must map tokens to non-negative int ids",
            assertFailsWith<TokenizerException> { Tokenizer.fromFolder(dir) }.message,
        )
    }
}
