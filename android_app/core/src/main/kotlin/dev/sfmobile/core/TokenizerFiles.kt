package dev.sfmobile.core

import com.google.gson.JsonElement
import com.google.gson.JsonObject
import com.google.gson.JsonParseException
import com.google.gson.JsonParser
import com.google.gson.JsonPrimitive
import java.io.File
import java.io.IOException
import java.nio.ByteBuffer
import java.nio.charset.CharacterCodingException
import java.nio.charset.CodingErrorAction
import java.util.zip.GZIPInputStream

/**
 * The files a [Tokenizer] is built from (docs/tokenizer.md, "Files"): a diffusers `tokenizer/`
 * folder (vocab.json + merges.txt, or a single tokenizer.json) and the CLIP merges shipped in the
 * jar (the resource `bpe_simple_vocab_16e6.txt.gz`, the same file as sfmobile/data/).
 */
object TokenizerFiles {
    const val SHIPPED_MERGES = "bpe_simple_vocab_16e6.txt.gz"
    private const val SHIPPED_MERGE_COUNT = 49152 - 256 - 2
    private val INTEGER = Regex("-?[0-9]+")

    private val shippedTokenizer: Tokenizer by lazy { buildShipped() }

    fun shipped(): Tokenizer = shippedTokenizer

    /** vocab.json + merges.txt, or tokenizer.json when vocab.json is absent; the pad token if named. */
    fun read(
        folder: File,
        warn: (String) -> Unit = {},
    ): Tokenizer {
        if (!folder.isDirectory) throw TokenizerException("tokenizer folder $folder does not exist or is not a folder")
        val json = File(folder, "tokenizer.json")
        val (vocab, merges) =
            if (!File(folder, "vocab.json").exists() && json.exists()) {
                readTokenizerJson(json)
            } else {
                readVocab(File(folder, "vocab.json")) to readMergesFile(File(folder, "merges.txt"))
            }
        return Tokenizer(vocab, merges, readPadToken(folder), folder.path, warn)
    }

    private fun buildShipped(): Tokenizer {
        val stream =
            Tokenizer::class.java.getResourceAsStream(SHIPPED_MERGES)
                ?: throw TokenizerException("the shipped CLIP merges ($SHIPPED_MERGES) are not on the classpath")
        val raw = stream.use { GZIPInputStream(it).readBytes() }
        val merges = readMerges(raw, File(SHIPPED_MERGES), SHIPPED_MERGE_COUNT)
        val chars = Tokenizer.byteCharsInVocabOrder()
        val tokens =
            chars + chars.map { it + Tokenizer.END_OF_WORD } + merges.map { it.first + it.second } +
                listOf(Tokenizer.START_TOKEN, Tokenizer.END_TOKEN)
        val vocab = HashMap<String, Int>(tokens.size * 2)
        tokens.forEachIndexed { id, token -> vocab[token] = id }
        return Tokenizer(vocab, merges, Tokenizer.END_TOKEN, SHIPPED_MERGES)
    }

    private fun readBytes(path: File): ByteArray =
        try {
            path.readBytes()
        } catch (error: IOException) {
            if (!path.exists()) throw TokenizerException("tokenizer file $path is missing")
            throw TokenizerException("tokenizer file $path is not readable: ${error.message}")
        }

    private fun decodeUtf8(
        raw: ByteArray,
        path: File,
    ): String =
        try {
            Charsets.UTF_8
                .newDecoder()
                .onMalformedInput(CodingErrorAction.REPORT)
                .decode(ByteBuffer.wrap(raw))
                .toString()
        } catch (error: CharacterCodingException) {
            throw TokenizerException("tokenizer file $path is not readable: not UTF-8 text")
        }

    private fun parseJson(path: File): JsonElement =
        try {
            JsonParser.parseString(decodeUtf8(readBytes(path), path))
        } catch (error: JsonParseException) {
            throw TokenizerException("tokenizer file $path is not readable JSON: ${error.message}")
        }

    /** vocab.json: an object of token -> non-negative integer id. */
    fun readVocab(path: File): Map<String, Int> {
        val json = parseJson(path)
        val bad = TokenizerException("tokenizer file $path must map tokens to non-negative int ids")
        if (json !is JsonObject) throw bad
        val vocab = HashMap<String, Int>(json.size() * 2)
        for ((token, value) in json.entrySet()) vocab[token] = integerOrNull(value)?.takeIf { it >= 0 } ?: throw bad
        return vocab
    }

    /** A merges.txt file (see [readMerges]). */
    fun readMergesFile(path: File): List<Pair<String, String>> = readMerges(readBytes(path), path)

    /** merges.txt: an optional `#version` first line, then `left right` pairs, highest priority first. */
    fun readMerges(
        raw: ByteArray,
        path: File,
        limit: Int? = null,
    ): List<Pair<String, String>> {
        val lines = decodeUtf8(raw, path).split("\n")
        val firstLine = if (lines.isNotEmpty() && "#version" in lines[0]) 1 else 0
        val merges = ArrayList<Pair<String, String>>()
        for (index in firstLine until lines.size) {
            if (limit != null && merges.size == limit) break
            val line = lines[index]
            if (line.isEmpty()) continue
            val parts = line.split(" ")
            if (parts.size != 2 || parts.any { it.isEmpty() }) {
                throw TokenizerException("tokenizer file $path line ${index + 1} is not a `left right` pair")
            }
            merges += parts[0] to parts[1]
        }
        return merges
    }

    private fun readTokenizerJson(path: File): Pair<Map<String, Int>, List<Pair<String, String>>> {
        val bad = TokenizerException("tokenizer file $path is not a BPE tokenizer.json")
        val model = (parseJson(path) as? JsonObject)?.get("model") as? JsonObject ?: throw bad
        val vocabJson = model.get("vocab") as? JsonObject ?: throw bad
        val mergesJson = model.get("merges")?.takeIf { it.isJsonArray }?.asJsonArray ?: throw bad
        val vocab = vocabJson.entrySet().associate { (token, id) -> token to (integerOrNull(id) ?: throw bad) }
        val merges =
            mergesJson.map { merge ->
                val parts =
                    when {
                        merge is JsonPrimitive && merge.isString -> {
                            merge.asString.split(" ")
                        }

                        merge.isJsonArray -> {
                            merge.asJsonArray.map {
                                (it as? JsonPrimitive)?.takeIf { p -> p.isString }?.asString
                                    ?: throw bad
                            }
                        }

                        else -> {
                            throw bad
                        }
                    }
                if (parts.size != 2) throw TokenizerException("tokenizer file $path has a malformed vocab or merges")
                parts[0] to parts[1]
            }
        return vocab to merges
    }

    /** pad_token of special_tokens_map.json, else tokenizer_config.json, else `<|endoftext|>`. */
    private fun readPadToken(folder: File): String {
        for (name in listOf("special_tokens_map.json", "tokenizer_config.json")) {
            val path = File(folder, name)
            if (!path.exists()) continue
            val json = parseJson(path) as? JsonObject ?: throw TokenizerException("tokenizer file $path is not a readable JSON object")
            var pad = json.get("pad_token")
            if (pad is JsonObject) pad = pad.get("content")
            if (pad is JsonPrimitive && pad.isString) return pad.asString
            if (pad != null && !pad.isJsonNull) throw TokenizerException("tokenizer file $path has a pad_token that is not text")
        }
        return Tokenizer.END_TOKEN
    }

    /** A JSON integer (not 1.0, not true, not "1") as an Int, else null. */
    private fun integerOrNull(value: JsonElement): Int? {
        if (value !is JsonPrimitive || !value.isNumber) return null
        return value.asString.takeIf { INTEGER.matches(it) }?.toIntOrNull()
    }
}
