package dev.sfmobile.core

import java.io.File
import java.text.Normalizer

/**
 * CLIP's byte-level BPE tokenizer: prompt -> 77 token ids for the text encoder, step for step
 * what sfmobile/tokenizer.py does (docs/tokenizer.md is the spec both follow).
 *
 * Text is handled as Unicode code points, never UTF-16 chars. Character classes come from
 * java.lang.Character (the JVM's or the device's Unicode tables; docs/tokenizer.md lists the
 * only known differences, code points one side's tables leave unassigned).
 *
 * `warn` receives the one warning encode can give (a prompt cut to 75 tokens).
 */
class Tokenizer(
    val vocab: Map<String, Int>,
    val merges: List<Pair<String, String>>,
    val padToken: String,
    source: String,
    private val warn: (String) -> Unit = {},
) {
    private val mergeRanks = HashMap<String, Int>(merges.size * 2)
    private val byteToChar: Array<String> = bytesToUnicode()
    private val cache = HashMap<String, IntArray>()
    val startId: Int
    val endId: Int
    val padId: Int

    init {
        merges.forEachIndexed { rank, (first, second) -> mergeRanks["$first $second"] = rank }
        checkComplete(source)
        startId = vocab.getValue(START_TOKEN)
        endId = vocab.getValue(END_TOKEN)
        padId = vocab.getValue(padToken)
    }

    /** The same tokenizer with another warning sink (the vocabulary is shared, not copied). */
    fun withWarnings(sink: (String) -> Unit): Tokenizer = Tokenizer(vocab, merges, padToken, "(copy)", sink)

    /** Prompt -> [MAX_LENGTH] ids: start, up to 75 tokens, end, then pad ids. */
    fun encode(text: String): IntArray {
        val codePoints = codePointsOf(text)
        var ids = tokenIds(codePoints)
        val room = MAX_LENGTH - 2
        if (ids.size > room) {
            warn("prompt is ${ids.size} tokens long; dropped the last ${ids.size - room} tokens (CLIP keeps $room)")
            ids = ids.subList(0, room)
        }
        val out = IntArray(MAX_LENGTH) { padId }
        out[0] = startId
        ids.forEachIndexed { i, id -> out[i + 1] = id }
        out[ids.size + 1] = endId
        return out
    }

    /** Prompts -> an IntTensor [prompts.size, 77]. */
    fun encodeBatch(texts: List<String>): IntTensor {
        val data = IntArray(texts.size * MAX_LENGTH)
        texts.forEachIndexed { row, text -> encode(text).copyInto(data, row * MAX_LENGTH) }
        return IntTensor(intArrayOf(texts.size, MAX_LENGTH), data)
    }

    private fun tokenIds(text: IntArray): List<Int> {
        val ids = ArrayList<Int>()
        var start = 0
        var i = 0
        while (i <= text.size) {
            val special = if (i < text.size) specialTokenAt(text, i) else null
            if (i == text.size || special != null) {
                val segment = String(text, start, i - start)
                for (word in splitWords(codePointsOf(cleanText(segment)))) ids += bpe(word).toList()
                if (special == null) break
                ids += vocab.getValue(special)
                i += special.length
                start = i
            } else {
                i++
            }
        }
        return ids
    }

    private fun bpe(word: String): IntArray {
        cache[word]?.let { return it }
        val symbols = word.toByteArray(Charsets.UTF_8).map { byteToChar[it.toInt() and 0xFF] }.toMutableList()
        symbols[symbols.size - 1] = symbols.last() + END_OF_WORD
        val ids = merge(symbols).map { vocab.getValue(it) }.toIntArray()
        if (cache.size >= BPE_CACHE_LIMIT) cache.clear()
        cache[word] = ids
        return ids
    }

    /** Join the lowest-ranked adjacent pair everywhere (left to right, no overlap) until none is a merge. */
    private fun merge(start: List<String>): List<String> {
        var symbols = start
        while (symbols.size > 1) {
            var best = -1
            var bestRank = Int.MAX_VALUE
            for (i in 0 until symbols.size - 1) {
                val rank = mergeRanks["${symbols[i]} ${symbols[i + 1]}"] ?: continue
                if (rank < bestRank) {
                    bestRank = rank
                    best = i
                }
            }
            if (best < 0) break
            val first = symbols[best]
            val second = symbols[best + 1]
            val merged = ArrayList<String>(symbols.size)
            var i = 0
            while (i < symbols.size) {
                if (i + 1 < symbols.size && symbols[i] == first && symbols[i + 1] == second) {
                    merged += first + second
                    i += 2
                } else {
                    merged += symbols[i]
                    i++
                }
            }
            symbols = merged
        }
        return symbols
    }

    private fun checkComplete(source: String) {
        val needed = ArrayList<String>()
        byteToChar.forEach { needed += it }
        byteToChar.forEach { needed += it + END_OF_WORD }
        merges.forEach { (first, second) -> needed += first + second }
        needed += listOf(START_TOKEN, END_TOKEN, padToken)
        val missing = needed.filter { it !in vocab }
        if (missing.isNotEmpty()) {
            val examples = missing.take(3).joinToString(", ", "[", "]") { "'$it'" }
            throw TokenizerException("vocabulary from $source lacks ${missing.size} needed tokens, e.g. $examples")
        }
    }

    companion object {
        const val MAX_LENGTH = 77
        const val START_TOKEN = "<|startoftext|>"
        const val END_TOKEN = "<|endoftext|>"
        const val END_OF_WORD = "</w>"
        private const val BPE_CACHE_LIMIT = 10_000
        private val CONTRACTIONS = listOf("'s", "'t", "'re", "'ve", "'m", "'ll", "'d")

        /** Unicode's White_Space property: 25 code points (not U+001C..U+001F). */
        private val WHITESPACE: Set<Int> =
            (
                listOf(0x09, 0x0A, 0x0B, 0x0C, 0x0D, 0x20, 0x85, 0xA0, 0x1680) + (0x2000..0x200A) +
                    listOf(0x2028, 0x2029, 0x202F, 0x205F, 0x3000)
            ).toSet()

        /** Read a tokenizer folder (see [TokenizerFiles.read]). */
        fun fromFolder(
            folder: File,
            warn: (String) -> Unit = {},
        ): Tokenizer = TokenizerFiles.read(folder, warn)

        /** The standard 49,408-token CLIP vocabulary built from the merges shipped in the jar. */
        fun default(warn: (String) -> Unit = {}): Tokenizer = TokenizerFiles.shipped().withWarnings(warn)

        /** Byte -> printable character (docs/tokenizer.md, "Byte table"), indexed by byte. */
        fun bytesToUnicode(): Array<String> {
            val printable = (0x21..0x7E) + (0xA1..0xAC) + (0xAE..0xFF)
            val table = arrayOfNulls<String>(256)
            printable.forEach { table[it] = String(Character.toChars(it)) }
            var shifted = 0
            for (byte in 0 until 256) {
                if (table[byte] == null) table[byte] = String(Character.toChars(256 + shifted++))
            }
            return table.requireNoNulls()
        }

        /** Byte characters in vocabulary order: printable bytes first, then the shifted ones. */
        fun byteCharsInVocabOrder(): List<String> {
            val table = bytesToUnicode()
            val printable = ((0x21..0x7E) + (0xA1..0xAC) + (0xAE..0xFF)).toSet()
            return (0 until 256).filter { it in printable }.map { table[it] } +
                (0 until 256).filter { it !in printable }.map { table[it] }
        }

        /** NFC, then each code point lower-cased on its own (U+0130 -> "i" + U+0307; Σ -> σ always). */
        fun cleanText(segment: String): String {
            val out = StringBuilder()
            Normalizer.normalize(segment, Normalizer.Form.NFC).codePoints().forEach { cp ->
                if (cp == 0x130) out.append("i\u0307") else out.appendCodePoint(Character.toLowerCase(cp))
            }
            return out.toString()
        }

        /** Cleaned text -> words, CLIP's pattern as a scanner (docs/tokenizer.md step 3). */
        fun splitWords(text: IntArray): List<String> {
            val words = ArrayList<String>()
            var i = 0
            while (i < text.size) {
                val special = specialTokenAt(text, i)
                val contraction = CONTRACTIONS.firstOrNull { startsWith(text, i, it) }
                var end = i + 1
                when {
                    special != null -> {
                        words += listOf("<|", special.substring(2, special.length - 2), "|>")
                        end = i + special.length
                    }

                    contraction != null -> {
                        words += contraction
                        end = i + contraction.length
                    }

                    isLetter(text[i]) -> {
                        while (end < text.size && isLetter(text[end])) end++
                        words += String(text, i, end - i)
                    }

                    isNumber(text[i]) -> {
                        words += String(text, i, 1)
                    }

                    text[i] in WHITESPACE -> {}

                    else -> {
                        while (end < text.size && !isSeparatorClass(text[end])) end++
                        words += String(text, i, end - i)
                    }
                }
                i = end
            }
            return words
        }

        private fun isSeparatorClass(cp: Int) = cp in WHITESPACE || isLetter(cp) || isNumber(cp)

        fun isLetter(cp: Int): Boolean = Character.isLetter(cp) // general category L*

        fun isNumber(cp: Int): Boolean =
            when (Character.getType(cp).toByte()) {
                Character.DECIMAL_DIGIT_NUMBER, Character.LETTER_NUMBER, Character.OTHER_NUMBER -> true
                else -> false
            }

        /** The special token spelled exactly at index i (both are ASCII, so one code point per char). */
        private fun specialTokenAt(
            text: IntArray,
            i: Int,
        ): String? = listOf(START_TOKEN, END_TOKEN).firstOrNull { startsWith(text, i, it) }

        private fun startsWith(
            text: IntArray,
            i: Int,
            ascii: String,
        ): Boolean = i + ascii.length <= text.size && ascii.indices.all { text[i + it] == ascii[it].code }

        /** Code points of a prompt; a lone surrogate is refused as Python refuses it. */
        private fun codePointsOf(text: String): IntArray {
            val codePoints = text.codePoints().toArray()
            codePoints.forEachIndexed { index, cp ->
                if (cp in 0xD800..0xDFFF) {
                    val hex = "%04X".format(cp)
                    throw TokenizerException("prompt is not valid Unicode text: lone surrogate U+$hex at index $index")
                }
            }
            return codePoints
        }
    }
}
