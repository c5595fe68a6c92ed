package gateway

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Purposes of the files the gateway keeps.
const (
	purposeBatch       = "batch"
	purposeBatchOutput = "batch_output"
)

// fileObject is OpenAI's file object.
type fileObject struct {
	ID            string  `json:"id"`
	Object        string  `json:"object"`
	Bytes         int64   `json:"bytes"`
	CreatedAt     int64   `json:"created_at"`
	ExpiresAt     *int64  `json:"expires_at"`
	Filename      string  `json:"filename"`
	Purpose       string  `json:"purpose"`
	Status        string  `json:"status"`
	StatusDetails *string `json:"status_details"`
}

// objectName is where a tenant's file lives in the object store.
func objectName(t tenant, id string) string { return t.ns + "/" + id }

// newID makes an id in OpenAI's style: prefix ("file-", "batch_") and
// 24 hex characters that sort in creation order (orderedHex).
func newID(prefix string) string { return prefix + orderedHex() }

// fileOf turns an object's info into the file object, or reports it
// expired.
func fileOf(info *jetstream.ObjectInfo, now time.Time) (fileObject, bool) {
	md := info.Metadata
	f := fileObject{
		ID: md["id"], Object: "file", Bytes: int64(info.Size), Filename: md["filename"],
		Purpose: md["purpose"], Status: "processed",
	}
	f.CreatedAt, _ = strconv.ParseInt(md["created_at"], 10, 64)
	if exp, err := strconv.ParseInt(md["expires_at"], 10, 64); err == nil && exp > 0 {
		f.ExpiresAt = &exp
		if now.Unix() >= exp {
			return f, false
		}
	}
	return f, f.ID != ""
}

// uploadFile is POST /v1/files: a multipart form with purpose and file,
// and optionally expires_after[anchor] and expires_after[seconds]. The file
// streams into the object store as it arrives; it is never held whole.
func (s *Server) uploadFile(w http.ResponseWriter, r *http.Request, t tenant) {
	r.Body = http.MaxBytesReader(w, r.Body, s.cfg.MaxFileBytes+1<<20)
	mr, err := r.MultipartReader()
	if err != nil {
		writeError(w, http.StatusBadRequest, errInvalid, "file", "the request must be multipart/form-data with a 'file' and a 'purpose' field")
		return
	}
	id := newID("file-")
	name := objectName(t, id)
	fields := map[string]string{}
	var info *jetstream.ObjectInfo
	for {
		part, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			s.dropObject(name, info)
			writeError(w, http.StatusBadRequest, errInvalid, "", "malformed multipart body: "+err.Error())
			return
		}
		if part.FormName() != "file" {
			v, err := io.ReadAll(io.LimitReader(part, 4096))
			if err != nil {
				s.dropObject(name, info)
				writeError(w, http.StatusBadRequest, errInvalid, part.FormName(), "unreadable field")
				return
			}
			fields[part.FormName()] = string(v)
			continue
		}
		if info != nil {
			s.dropObject(name, info)
			writeError(w, http.StatusBadRequest, errInvalid, "file", "only one file per upload")
			return
		}
		limited := &limitReader{r: part, left: s.cfg.MaxFileBytes}
		// An explicit deadline: without one the object store bounds the
		// whole transfer by the NATS client's default timeout (5 s).
		putCtx, cancel := context.WithTimeout(r.Context(), transferTimeout)
		info, err = s.files.Put(putCtx, jetstream.ObjectMeta{Name: name, Metadata: map[string]string{"id": id}}, limited)
		cancel()
		if limited.over {
			s.dropObject(name, info)
			writeError(w, http.StatusRequestEntityTooLarge, errTooLarge, "file",
				fmt.Sprintf("the file is larger than %d bytes (the gateway's max_file_bytes)", s.cfg.MaxFileBytes))
			return
		}
		if err != nil {
			s.dropObject(name, info)
			writeError(w, http.StatusInternalServerError, errServer, "", "storing the file failed")
			s.log.Error().Err(err).Str("file_id", id).Msg("storing an upload failed")
			return
		}
		fields["filename"] = part.FileName()
	}
	if info == nil {
		writeError(w, http.StatusBadRequest, errInvalid, "file", "the 'file' field is required")
		return
	}
	f, status, param, msg := s.fileMeta(id, fields, info)
	if status != 0 {
		s.dropObject(name, info)
		writeError(w, status, errInvalid, param, msg)
		return
	}
	meta := jetstream.ObjectMeta{Name: name, Metadata: map[string]string{
		"id": id, "filename": f.Filename, "purpose": f.Purpose, "tenant": t.ns,
		"created_at": strconv.FormatInt(f.CreatedAt, 10), "expires_at": expiresString(f.ExpiresAt),
	}}
	if err := s.files.UpdateMeta(r.Context(), name, meta); err != nil {
		s.dropObject(name, info)
		writeError(w, http.StatusInternalServerError, errServer, "", "storing the file failed")
		s.log.Error().Err(err).Str("file_id", id).Msg("recording an upload's metadata failed")
		return
	}
	writeJSON(w, http.StatusOK, f)
}

// fileMeta checks an upload's fields and makes its file object; a non-zero
// status is the refusal.
func (s *Server) fileMeta(id string, fields map[string]string, info *jetstream.ObjectInfo) (f fileObject, status int, param, msg string) {
	now := time.Now()
	f = fileObject{ID: id, Object: "file", Bytes: int64(info.Size), CreatedAt: now.Unix(), Filename: fields["filename"],
		Purpose: fields["purpose"], Status: "processed"}
	if f.Purpose != purposeBatch {
		return f, http.StatusBadRequest, "purpose", fmt.Sprintf("purpose %q is not supported: the gateway keeps batch files ('batch')", f.Purpose)
	}
	if f.Filename == "" {
		f.Filename = "upload.jsonl"
	}
	anchor, seconds := fields["expires_after[anchor]"], fields["expires_after[seconds]"]
	if anchor != "" || seconds != "" {
		if anchor != "created_at" {
			return f, http.StatusBadRequest, "expires_after[anchor]", fmt.Sprintf("%q: the only anchor is 'created_at'", anchor)
		}
		n, err := strconv.ParseInt(seconds, 10, 64)
		if err != nil || n < 3600 || n > int64(s.cfg.FileTTL/time.Second) {
			return f, http.StatusBadRequest, "expires_after[seconds]",
				fmt.Sprintf("%q must be a whole number of seconds from 3600 to %d", seconds, int64(s.cfg.FileTTL/time.Second))
		}
		exp := f.CreatedAt + n
		f.ExpiresAt = &exp
	}
	return f, 0, "", ""
}

func expiresString(p *int64) string {
	if p == nil {
		return "0"
	}
	return strconv.FormatInt(*p, 10)
}

// dropObject removes a refused upload.
func (s *Server) dropObject(name string, info *jetstream.ObjectInfo) {
	if info == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.files.Delete(ctx, name); err != nil && !errors.Is(err, jetstream.ErrObjectNotFound) {
		s.log.Warn().Err(err).Str("object", name).Msg("removing a refused upload failed")
	}
}

// limitReader reads at most left bytes and notes an attempt to read more.
type limitReader struct {
	r    io.Reader
	left int64
	over bool
}

func (l *limitReader) Read(p []byte) (int, error) {
	if l.left <= 0 {
		var one [1]byte
		if n, _ := l.r.Read(one[:]); n > 0 {
			l.over = true
			return 0, errors.New("file too large")
		}
		return 0, io.EOF
	}
	if int64(len(p)) > l.left {
		p = p[:l.left]
	}
	n, err := l.r.Read(p)
	l.left -= int64(n)
	return n, err
}

// file reads a tenant's file; ok is false when it does not exist for
// the tenant (or expired).
func (s *Server) file(ctx context.Context, t tenant, id string) (fileObject, bool, error) {
	info, err := s.files.GetInfo(ctx, objectName(t, id))
	if errors.Is(err, jetstream.ErrObjectNotFound) {
		return fileObject{}, false, nil
	}
	if err != nil {
		return fileObject{}, false, err
	}
	f, ok := fileOf(info, time.Now())
	if !ok && f.ID != "" {
		// Past its expires_after: gone for good, its space freed now
		// rather than at the store's own bound.
		s.dropObject(objectName(t, id), info)
	}
	return f, ok, nil
}

func (s *Server) getFile(w http.ResponseWriter, r *http.Request, t tenant) {
	f, ok, err := s.file(r.Context(), t, r.PathValue("id"))
	switch {
	case err != nil:
		s.serverError(w, "reading a file", err)
	case !ok:
		writeError(w, http.StatusNotFound, errNotFound, "id", fmt.Sprintf("No such File object: %s", r.PathValue("id")))
	default:
		writeJSON(w, http.StatusOK, f)
	}
}

// fileContent streams a file's bytes out of the object store.
func (s *Server) fileContent(w http.ResponseWriter, r *http.Request, t tenant) {
	id := r.PathValue("id")
	if _, ok, err := s.file(r.Context(), t, id); err != nil || !ok {
		if err != nil {
			s.serverError(w, "reading a file", err)
			return
		}
		writeError(w, http.StatusNotFound, errNotFound, "id", fmt.Sprintf("No such File object: %s", id))
		return
	}
	// An explicit deadline: without one the object store bounds the whole
	// transfer by the NATS client's default timeout (5 s), and a client
	// reading slower than the file's size in 5 s would be cut off.
	ctx, cancel := context.WithTimeout(r.Context(), transferTimeout)
	defer cancel()
	obj, err := s.files.Get(ctx, objectName(t, id))
	if err != nil {
		s.serverError(w, "reading a file", err)
		return
	}
	defer obj.Close()
	info, _ := obj.Info()
	w.Header().Set("Content-Type", "application/octet-stream")
	if info != nil {
		w.Header().Set("Content-Length", strconv.FormatUint(info.Size, 10))
	}
	if _, err := io.Copy(w, obj); err != nil {
		s.log.Warn().Err(err).Str("file_id", id).Msg("sending a file was cut short")
	}
}

func (s *Server) deleteFile(w http.ResponseWriter, r *http.Request, t tenant) {
	id := r.PathValue("id")
	_, ok, err := s.file(r.Context(), t, id)
	if err == nil && ok {
		err = s.files.Delete(r.Context(), objectName(t, id))
	}
	switch {
	case err != nil:
		s.serverError(w, "deleting a file", err)
	case !ok:
		writeError(w, http.StatusNotFound, errNotFound, "id", fmt.Sprintf("No such File object: %s", id))
	default:
		writeJSON(w, http.StatusOK, map[string]any{"id": id, "object": "file", "deleted": true})
	}
}

// listFiles is GET /v1/files: the tenant's files, newest first by
// default (order=asc for oldest first), after a file id, up to limit
// (default and most 10,000), of one purpose when given.
func (s *Server) listFiles(w http.ResponseWriter, r *http.Request, t tenant) {
	q := r.URL.Query()
	limit, ok := listLimit(w, q.Get("limit"), 10_000, 10_000)
	if !ok {
		return
	}
	order := cmp.Or(q.Get("order"), "desc")
	if order != "asc" && order != "desc" {
		writeError(w, http.StatusBadRequest, errInvalid, "order", fmt.Sprintf("%q: order is 'asc' or 'desc'", order))
		return
	}
	infos, err := s.files.List(r.Context())
	if err != nil && !errors.Is(err, jetstream.ErrNoObjectsFound) {
		s.serverError(w, "listing files", err)
		return
	}
	now := time.Now()
	var files []fileObject
	for _, info := range infos {
		if !strings.HasPrefix(info.Name, t.ns+"/") {
			continue
		}
		f, ok := fileOf(info, now)
		if !ok || (q.Get("purpose") != "" && f.Purpose != q.Get("purpose")) {
			continue
		}
		files = append(files, f)
	}
	slices.SortFunc(files, func(a, b fileObject) int {
		c := cmp.Or(cmp.Compare(a.CreatedAt, b.CreatedAt), strings.Compare(a.ID, b.ID))
		if order == "desc" {
			return -c
		}
		return c
	})
	page, more, found := pageAfter(files, q.Get("after"), limit, func(f fileObject) string { return f.ID })
	if !found {
		writeError(w, http.StatusBadRequest, errInvalid, "after", fmt.Sprintf("%q is not one of your files", q.Get("after")))
		return
	}
	writeJSON(w, http.StatusOK, listOf(page, more, func(f fileObject) string { return f.ID }))
}

// list is OpenAI's list envelope.
type list[T any] struct {
	Object  string  `json:"object"`
	Data    []T     `json:"data"`
	FirstID *string `json:"first_id"`
	LastID  *string `json:"last_id"`
	HasMore bool    `json:"has_more"`
}

func listOf[T any](page []T, more bool, id func(T) string) list[T] {
	l := list[T]{Object: "list", Data: page, HasMore: more}
	if l.Data == nil {
		l.Data = []T{}
	}
	if len(page) > 0 {
		first, last := id(page[0]), id(page[len(page)-1])
		l.FirstID, l.LastID = &first, &last
	}
	return l
}

// pageAfter is the page after the item with id after ("" for the first),
// up to limit; found is false when after names no item.
func pageAfter[T any](items []T, after string, limit int, id func(T) string) (page []T, more, found bool) {
	start := 0
	if after != "" {
		i := slices.IndexFunc(items, func(v T) bool { return id(v) == after })
		if i < 0 {
			return nil, false, false
		}
		start = i + 1
	}
	end := min(start+limit, len(items))
	return items[start:end], end < len(items), true
}

// listLimit reads a list's limit parameter.
func listLimit(w http.ResponseWriter, v string, def, most int) (int, bool) {
	if v == "" {
		return def, true
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > most {
		writeError(w, http.StatusBadRequest, errInvalid, "limit", fmt.Sprintf("%q: limit is a whole number from 1 to %d", v, most))
		return 0, false
	}
	return n, true
}

func (s *Server) serverError(w http.ResponseWriter, what string, err error) {
	s.log.Error().Err(err).Msg(what + " failed")
	writeError(w, http.StatusInternalServerError, errServer, "", what+" failed; try again")
}
