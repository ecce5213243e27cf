package dev.sfmobile.core

import java.io.File
import java.io.IOException
import java.nio.ByteBuffer
import java.nio.charset.CharacterCodingException
import java.security.MessageDigest

/** How much of each file [Bundle.open] checks: sizes and sha256, or sizes only (a fast start). */
enum class Verification { SHA256, SIZES }

/**
 * An exported bundle folder (export/README.md): manifest.json plus model and tokenizer files,
 * checked on open as sfmobile/bundle.py's read_bundle checks it.
 *
 * The bundle is closed (export/README.md "Closure rules"): every path in the manifest is
 * relative and normalised, every file a component or the tokenizer uses is listed in `files`,
 * every listed file resolves, symlinks followed, inside the bundle folder and has the listed
 * size and (with [Verification.SHA256]) sha256. Rules 6-7 (shapes) are checked here too;
 * rule 10 when [tokenizer] is called, as Python's Bundle.tokenizer does.
 */
class Bundle private constructor(
    val dir: File,
    val manifest: Manifest,
) {
    /** The model file of a component (`text_encoder`, `unet`, `decoder`, and `encoder` or `decoder_tile` when the bundle has one). */
    fun componentFile(name: String): File {
        val spec = manifest.components[name] ?: throw BundleException("$dir: no component '$name' in the manifest")
        return File(dir, spec.files.first())
    }

    /** Every file the manifest lists, in bytes (what loading the bundle costs on disk). */
    fun totalBytes(): Long = manifest.files.values.sumOf { it.bytes }

    /**
     * The bundle's tokenizer from exactly the manifest's vocab and merges files; the pad token is
     * the one with the manifest's pad_id, and the start/end ids must be the manifest's.
     */
    fun tokenizer(warn: (String) -> Unit = {}): Tokenizer {
        val spec = manifest.tokenizer
        val where = "${File(dir, MANIFEST)}: tokenizer"
        val vocabFile = File(dir, spec.vocab)
        val vocab = TokenizerFiles.readVocab(vocabFile)
        val merges = TokenizerFiles.readMergesFile(File(dir, spec.merges))
        val pad =
            vocab.entries.firstOrNull { it.value == spec.padId }?.key
                ?: throw TokenizerException("$where.pad_id ${spec.padId} is not in '${spec.vocab}'")
        val tokenizer = Tokenizer(vocab, merges, pad, "$where.vocab '${spec.vocab}'", warn)
        if (tokenizer.startId != spec.startId || tokenizer.endId != spec.endId) {
            throw TokenizerException(
                "$where.start_id/end_id ${spec.startId}/${spec.endId} differ from '${spec.vocab}''s ${tokenizer.startId}/${tokenizer.endId}",
            )
        }
        return tokenizer
    }

    companion object {
        const val MANIFEST = "manifest.json"

        fun open(
            dir: File,
            verify: Verification = Verification.SHA256,
        ): Bundle {
            val manifestFile = File(dir, MANIFEST)
            if (!manifestFile.isFile) throw BundleException("$dir: not a bundle (no $MANIFEST)")
            val text =
                try {
                    utf8(manifestFile.readBytes())
                } catch (error: CharacterCodingException) {
                    throw BundleException("$manifestFile: not valid JSON (not UTF-8 text: $error)") // closure rule 11
                } catch (error: IOException) {
                    throw BundleException("$manifestFile: not readable (${error.message})")
                }
            val manifest = Manifest.parse(text, manifestFile.path)
            checkClosed(dir, manifest, manifestFile)
            checkShapes(manifest, manifestFile)
            for ((name, expected) in manifest.files) checkFile(File(dir, name), expected, verify)
            return Bundle(dir, manifest)
        }

        /** Strict UTF-8 (closure rule 11): a malformed byte is an error, never U+FFFD. */
        private fun utf8(bytes: ByteArray): String {
            val decoder = Charsets.UTF_8.newDecoder() // reports malformed input (String(bytes) replaces it)
            return decoder.decode(ByteBuffer.wrap(bytes)).toString()
        }

        /**
         * Closure rules 3-4 (export/README.md): every file a component or the tokenizer uses is
         * listed in `files`, and every listed file, symlinks followed, is a regular file strictly
         * inside the bundle folder. (Rules 1-2, the paths' form, are the manifest's.)
         */
        private fun checkClosed(
            dir: File,
            manifest: Manifest,
            manifestFile: File,
        ) {
            val used = ArrayList<Pair<String, String>>() // (manifest field, path)
            for ((name, spec) in manifest.components) spec.files.forEachIndexed { i, f -> used += "components.$name.files[$i]" to f }
            used += "tokenizer.vocab" to manifest.tokenizer.vocab
            used += "tokenizer.merges" to manifest.tokenizer.merges
            for ((field, path) in used) {
                if (path !in manifest.files) throw BundleException("$manifestFile: $field '$path' is not listed in files (no checksum)")
            }
            val root =
                try {
                    dir.canonicalFile
                } catch (error: IOException) {
                    throw BundleException("$dir: cannot resolve the bundle folder (${error.message})")
                }
            for (name in manifest.files.keys) checkInside(root, File(dir, name), name, manifestFile)
        }

        /**
         * The image is the latent times one integer factor; UNet and decoder inputs are [batch, c, h, w];
         * an encoder takes the image [1, 3, H, W] and gives the latent [1, c, h, w]; a tile decoder, [checkDecoderTile].
         */
        private fun checkShapes(
            manifest: Manifest,
            manifestFile: File,
        ) {
            val image = manifest.image
            val latent = manifest.latent
            val factor = image.height / latent.height
            if (factor < 1 || image.height != factor * latent.height || image.width != factor * latent.width) {
                throw BundleException(
                    "$manifestFile: image ${image.height}x${image.width} is not latent ${latent.height}x${latent.width} times one integer factor",
                )
            }
            val expected = listOf(latent.channels, latent.height, latent.width)
            for (name in listOf("unet", "decoder")) {
                val shape = manifest.component(name).inputs[0].shape
                if (shape.size != 4 || shape.drop(1) != expected) {
                    throw BundleException(
                        "$manifestFile: components.$name.inputs[0].shape $shape is not [batch, ${expected.joinToString()}] (latent)",
                    )
                }
            }
            manifest.encoder?.let { encoder ->
                val io =
                    listOf(
                        Triple("inputs", encoder.inputs[0].shape, listOf(1, 3, image.height, image.width)),
                        Triple("outputs", encoder.outputs[0].shape, listOf(1) + expected),
                    )
                for ((field, shape, want) in io) {
                    if (shape != want) throw BundleException("$manifestFile: components.encoder.$field[0].shape $shape is not $want")
                }
            }
            manifest.components[Manifest.DECODER_TILE]?.let { checkDecoderTile(it, latent, factor, manifestFile) }
        }

        /** A tile decoder maps a square latent tile [1, c, t, t], t at most the latent's sides, to [1, 3, factor t, factor t]. */
        private fun checkDecoderTile(
            tile: ComponentSpec,
            latent: LatentSpec,
            factor: Int,
            manifestFile: File,
        ) {
            val shape = tile.inputs[0].shape
            val t = if (shape.size == 4) shape.last() else 0
            val most = minOf(latent.height, latent.width)
            if (shape != listOf(1, latent.channels, t, t) || t !in 1..most) {
                throw BundleException(
                    "$manifestFile: components.decoder_tile.inputs[0].shape $shape is not a square latent tile " +
                        "[1, ${latent.channels}, t, t], 0 < t <= $most",
                )
            }
            val want = listOf(1, 3, factor * t, factor * t)
            val output = tile.outputs[0].shape
            if (output != want) throw BundleException("$manifestFile: components.decoder_tile.outputs[0].shape $output is not $want")
        }

        private fun checkInside(
            root: File,
            file: File,
            name: String,
            manifestFile: File,
        ) {
            val resolved =
                try {
                    file.canonicalFile
                } catch (error: IOException) {
                    throw BundleException("$manifestFile: files entry '$name' does not resolve (${error.message})")
                }
            if (!resolved.path.startsWith(root.path + File.separator)) {
                throw BundleException("$manifestFile: files entry '$name' resolves outside the bundle folder ($resolved)")
            }
            if (!resolved.isFile) throw BundleException("$file: missing from the bundle (files entry '$name')")
        }

        private fun checkFile(
            file: File,
            expected: FileEntry,
            verify: Verification,
        ) {
            if (!file.isFile) throw BundleException("$file: missing from the bundle")
            val size = file.length()
            if (size != expected.bytes) throw BundleException("$file: size $size bytes, manifest says ${expected.bytes}")
            if (verify == Verification.SHA256 && sha256Of(file) != expected.sha256) {
                throw BundleException("$file: sha256 does not match the manifest (file changed)")
            }
        }

        /** Lowercase hex sha256 of a file, read in 1 MiB chunks. */
        fun sha256Of(file: File): String {
            val digest = MessageDigest.getInstance("SHA-256")
            file.inputStream().use { stream ->
                val buffer = ByteArray(1 shl 20)
                while (true) {
                    val read = stream.read(buffer)
                    if (read < 0) break
                    digest.update(buffer, 0, read)
                }
            }
            return digest.digest().joinToString("") { "%02x".format(it) }
        }
    }
}
