package dev.sfmobile.core.device

import dev.sfmobile.core.Bundle
import dev.sfmobile.core.Engine
import dev.sfmobile.core.FloatTensor
import dev.sfmobile.core.IntTensor
import dev.sfmobile.core.Tokenizer
import java.io.File

/**
 * Writes a complete bundle into [dir] for tests: dummy model files, a byte-level CLIP tokenizer
 * (every byte character, no merges) and a manifest whose sha256 and sizes are the files' own.
 */
internal fun writeTestBundle(
    dir: File,
    extraFiles: List<String> = listOf(),
): File {
    dir.mkdirs()
    val chars = Tokenizer.byteCharsInVocabOrder()
    val tokens = chars + chars.map { it + Tokenizer.END_OF_WORD } + listOf(Tokenizer.START_TOKEN, Tokenizer.END_TOKEN)
    val vocab = tokens.withIndex().joinToString(",", "{", "}") { (id, token) -> "\"${escape(token)}\": $id" }
    val contents =
        mapOf(
            "text_encoder.onnx" to "te",
            "unet.onnx" to "unet model bytes",
            "decoder.onnx" to "dec",
            "tokenizer/vocab.json" to vocab,
            "tokenizer/merges.txt" to "#version: 0.2\n",
        ) + extraFiles.associateWith { "extra $it" }
    for ((path, text) in contents) File(dir, path).apply { parentFile.mkdirs() }.writeText(text)
    val entries = contents.keys.associateWith { Bundle.sha256Of(File(dir, it)) to File(dir, it).length() }
    File(dir, "manifest.json").writeText(
        manifestText(
            extraFiles = extraFiles,
            fileEntries = entries,
            startEndIds =
                tokens.size - 2 to tokens.size - 1,
        ),
    )
    return dir
}

private fun escape(token: String): String =
    token
        .flatMap { c ->
            when {
                c == '"' || c == '\\' -> listOf('\\', c)
                c < ' ' -> "\\u%04x".format(c.code).toList()
                else -> listOf(c)
            }
        }.joinToString("")

/** An engine that returns zeros of the shapes the test manifest declares, counting its calls. */
internal class ZeroEngine : Engine {
    var unetCalls = 0
    var closed = false

    override fun encodeText(tokenIds: IntTensor) =
        FloatTensor(intArrayOf(tokenIds.shape[0], 77, 32), FloatArray(tokenIds.shape[0] * 77 * 32))

    override fun predict(
        latents: FloatTensor,
        timestep: Float,
        text: FloatTensor,
        guidance: Float?,
    ): FloatTensor {
        unetCalls++
        return FloatTensor(latents.shape, FloatArray(latents.data.size))
    }

    override fun decode(latents: FloatTensor) = FloatTensor(intArrayOf(1, 3, 64, 64), FloatArray(3 * 64 * 64))

    override fun close() {
        closed = true
    }
}
