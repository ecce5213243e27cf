package dev.sfmobile.app.gallery

import android.content.ContentValues
import android.content.Context
import android.content.Intent
import android.graphics.Bitmap
import android.net.Uri
import android.os.Environment
import android.provider.MediaStore
import androidx.core.content.FileProvider
import java.io.File
import java.io.IOException

/** Generated images out of the app: a PNG in the cache, the gallery (MediaStore), the share sheet (FileProvider). */
object ImageExport {
    private const val MIME = "image/png"

    /** Writes [image] as `cache/images/sfmobile-<time>.png` (the FileProvider's shared folder). */
    fun writeCachePng(
        context: Context,
        image: Bitmap,
    ): File {
        val dir = File(context.cacheDir, "images").apply { mkdirs() }
        val file = File(dir, "sfmobile-${System.currentTimeMillis()}.png")
        file.outputStream().use { image.compress(Bitmap.CompressFormat.PNG, 100, it) }
        return file
    }

    /**
     * Copies [png] into Pictures/sfmobile through MediaStore (no storage permission from Android
     * 10); the entry stays pending, hidden from other apps, until the bytes are written.
     */
    fun saveToGallery(
        context: Context,
        png: File,
    ): Uri {
        val resolver = context.contentResolver
        val values =
            ContentValues().apply {
                put(MediaStore.Images.Media.DISPLAY_NAME, png.name)
                put(MediaStore.Images.Media.MIME_TYPE, MIME)
                put(MediaStore.Images.Media.RELATIVE_PATH, "${Environment.DIRECTORY_PICTURES}/sfmobile")
                put(MediaStore.Images.Media.IS_PENDING, 1)
            }
        val uri =
            resolver.insert(MediaStore.Images.Media.EXTERNAL_CONTENT_URI, values)
                ?: throw IOException("MediaStore refused a new image")
        try {
            resolver.openOutputStream(uri)?.use { out -> png.inputStream().use { it.copyTo(out) } }
                ?: throw IOException("cannot write $uri")
            resolver.update(uri, ContentValues().apply { put(MediaStore.Images.Media.IS_PENDING, 0) }, null, null)
            return uri
        } catch (e: IOException) {
            resolver.delete(uri, null, null)
            throw e
        }
    }

    /** Opens the share sheet for [png], readable by the receiving app through the FileProvider. */
    fun share(
        context: Context,
        png: File,
    ) {
        val uri = FileProvider.getUriForFile(context, "${context.packageName}.files", png)
        val send =
            Intent(Intent.ACTION_SEND)
                .setType(MIME)
                .putExtra(Intent.EXTRA_STREAM, uri)
                .addFlags(Intent.FLAG_GRANT_READ_URI_PERMISSION)
        context.startActivity(Intent.createChooser(send, null).addFlags(Intent.FLAG_ACTIVITY_NEW_TASK))
    }
}
