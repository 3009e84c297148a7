// Records what Go's encoding/json and time packages do with the inputs on stdin, one
// base64 input per line, as one JSON result per line. Built with Go 1.19.8, the Go
// release of Docker 20.10.24. The types below are the Docker 20.10 image config types.
//
//	go run harness.go syntax|time|image < inputs > results
package main

import (
	"bufio"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"os"
	"time"
)

type HealthConfig struct {
	Test        []string      `json:",omitempty"`
	Interval    time.Duration `json:",omitempty"`
	Timeout     time.Duration `json:",omitempty"`
	StartPeriod time.Duration `json:",omitempty"`
	Retries     int           `json:",omitempty"`
}

// StrSlice accepts a list of strings or a single string.
type StrSlice []string

func (e *StrSlice) UnmarshalJSON(b []byte) error {
	if len(b) == 0 {
		return nil
	}
	list := make([]string, 0, 1)
	if err := json.Unmarshal(b, &list); err != nil {
		var single string
		if err := json.Unmarshal(b, &single); err != nil {
			return err
		}
		list = append(list, single)
	}
	*e = list
	return nil
}

type Config struct {
	Hostname        string
	Domainname      string
	User            string
	AttachStdin     bool
	AttachStdout    bool
	AttachStderr    bool
	ExposedPorts    map[string]struct{} `json:",omitempty"`
	Tty             bool
	OpenStdin       bool
	StdinOnce       bool
	Env             []string
	Cmd             StrSlice
	Healthcheck     *HealthConfig `json:",omitempty"`
	ArgsEscaped     bool          `json:",omitempty"`
	Image           string
	Volumes         map[string]struct{}
	WorkingDir      string
	Entrypoint      StrSlice
	NetworkDisabled bool   `json:",omitempty"`
	MacAddress      string `json:",omitempty"`
	OnBuild         []string
	Labels          map[string]string
	StopSignal      string   `json:",omitempty"`
	StopTimeout     *int     `json:",omitempty"`
	Shell           StrSlice `json:",omitempty"`
}

type V1Image struct {
	ID              string    `json:"id,omitempty"`
	Parent          string    `json:"parent,omitempty"`
	Comment         string    `json:"comment,omitempty"`
	Created         time.Time `json:"created"`
	Container       string    `json:"container,omitempty"`
	ContainerConfig Config    `json:"container_config,omitempty"`
	DockerVersion   string    `json:"docker_version,omitempty"`
	Author          string    `json:"author,omitempty"`
	Config          *Config   `json:"config,omitempty"`
	Architecture    string    `json:"architecture,omitempty"`
	Variant         string    `json:"variant,omitempty"`
	OS              string    `json:"os,omitempty"`
	Size            int64     `json:",omitempty"`
}

type History struct {
	Created    time.Time `json:"created"`
	Author     string    `json:"author,omitempty"`
	CreatedBy  string    `json:"created_by,omitempty"`
	Comment    string    `json:"comment,omitempty"`
	EmptyLayer bool      `json:"empty_layer,omitempty"`
}

type RootFS struct {
	Type    string   `json:"type"`
	DiffIDs []string `json:"diff_ids,omitempty"`
}

type Image struct {
	V1Image
	Parent     string    `json:"parent,omitempty"`
	RootFS     *RootFS   `json:"rootfs,omitempty"`
	History    []History `json:"history,omitempty"`
	OSVersion  string    `json:"os.version,omitempty"`
	OSFeatures []string  `json:"os.features,omitempty"`
}

// Rest holds the decoded fields that are not part of the V1Image, all keys present.
type Rest struct {
	History    []History `json:"history"`
	RootFS     *RootFS   `json:"rootfs"`
	OSVersion  string    `json:"os.version"`
	OSFeatures []string  `json:"os.features"`
}

const layerID = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
const parentID = "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"

func syntax(data []byte) map[string]interface{} {
	var v interface{}
	err := json.Unmarshal(data, &v)
	if e, ok := err.(*json.SyntaxError); ok {
		return map[string]interface{}{"error": e.Error(), "offset": e.Offset}
	}
	if err != nil {
		return map[string]interface{}{"error": err.Error()}
	}
	b, _ := json.Marshal(v)
	return map[string]interface{}{"value": string(b)}
}

func parseTime(data []byte) map[string]interface{} {
	var t time.Time
	if err := t.UnmarshalJSON(append(append([]byte(`"`), data...), '"')); err != nil {
		return map[string]interface{}{"error": err.Error()}
	}
	b, err := t.MarshalJSON()
	if err != nil {
		return map[string]interface{}{"error": err.Error()}
	}
	return map[string]interface{}{"json": string(b), "unix": t.Unix(), "nanos": t.Nanosecond()}
}

func image(data []byte) map[string]interface{} {
	img := &Image{}
	if err := json.Unmarshal(data, img); err != nil {
		return map[string]interface{}{"error": err.Error()}
	}
	if img.RootFS == nil {
		return map[string]interface{}{"error": "invalid image JSON, no RootFS key"}
	}
	v1 := img.V1Image
	v1.ID = ""
	v1JSON, err := json.Marshal(v1)
	if err != nil {
		return map[string]interface{}{"error": err.Error()}
	}
	// The v1 ID as CreateID computes it, with fixed layer and parent IDs.
	var fields map[string]*json.RawMessage
	if err := json.Unmarshal(v1JSON, &fields); err != nil {
		panic(err)
	}
	lid, _ := json.Marshal(layerID)
	pid, _ := json.Marshal(parentID)
	fields["layer_id"] = (*json.RawMessage)(&lid)
	fields["parent"] = (*json.RawMessage)(&pid)
	idInput, _ := json.Marshal(fields)
	v1ID := sha256.Sum256(idInput)
	rest, _ := json.Marshal(Rest{img.History, img.RootFS, img.OSVersion, img.OSFeatures})
	return map[string]interface{}{"v1": string(v1JSON), "v1_id": hex.EncodeToString(v1ID[:]), "rest": string(rest)}
}

func main() {
	modes := map[string]func([]byte) map[string]interface{}{"syntax": syntax, "time": parseTime, "image": image}
	run := modes[os.Args[1]]
	in := bufio.NewScanner(os.Stdin)
	in.Buffer(make([]byte, 1<<20), 1<<26)
	out := bufio.NewWriter(os.Stdout)
	defer out.Flush()
	enc := json.NewEncoder(out)
	enc.SetEscapeHTML(false)
	for in.Scan() {
		data, err := base64.StdEncoding.DecodeString(in.Text())
		if err != nil {
			panic(err)
		}
		if err := enc.Encode(run(data)); err != nil {
			panic(err)
		}
	}
}
